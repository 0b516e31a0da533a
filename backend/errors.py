"""One error hierarchy with stable machine codes.

Every failure a client can cause is a subclass of :class:`HeatCrewError` carrying an HTTP
status, a stable ``code`` (documented, never renamed) and a human message. ``backend.app``
maps them once to ``{"code", "message", "detail"}``.
"""

from typing import Any, ClassVar

__all__ = (
    "AuthError",
    "BlobHashMismatch",
    "BlobNotFound",
    "BlobSizeMismatch",
    "BlobStoreUnavailable",
    "BlobTooLarge",
    "ClientDisconnected",
    "Conflict",
    "DatabaseUnavailable",
    "EventsBusy",
    "Forbidden",
    "HeatCrewError",
    "InvalidInput",
    "LoginBusy",
    "NotFound",
    "NotReady",
    "PresignUnsupported",
    "RateLimited",
    "UploadNotFound",
    "UploadOffsetMismatch",
    "UploadQuotaExceeded",
    "UploadStalled",
)


class HeatCrewError(Exception):
    """Base of every error with a stable code."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        detail: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code  # type: ignore[misc]
        if status is not None:
            self.status = status  # type: ignore[misc]
        self.detail = detail
        self.headers = headers or {}
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "detail": self.detail}


class InvalidInput(HeatCrewError):
    status = 400
    code = "invalid_input"
    default_message = "The request body or parameters are not valid."


class AuthError(HeatCrewError):
    """401: the caller is not (or no longer) authenticated."""

    status = 401
    code = "not_authenticated"
    default_message = "Authentication is required."


class Forbidden(HeatCrewError):
    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do this."


class NotFound(HeatCrewError):
    status = 404
    code = "not_found"
    default_message = "No such resource."


class Conflict(HeatCrewError):
    status = 409
    code = "conflict"
    default_message = "The resource is not in a state that allows this."


class RateLimited(HeatCrewError):
    status = 429
    code = "rate_limited"
    default_message = "Too many attempts; try again later."


class LoginBusy(HeatCrewError):
    """503: every password check of this worker is taken and the wait ran out; retry shortly."""

    status = 503
    code = "login_busy"
    default_message = "The server is busy checking other logins; try again in a moment."


class EventsBusy(HeatCrewError):
    """503: the worker holds as many event streams as it may; the phone polls and comes back later."""

    status = 503
    code = "events_busy"
    default_message = "This server holds as many live streams as it may; pull as usual and try again later."


class BlobNotFound(NotFound):
    code = "blob_not_found"
    default_message = "No blob with that hash is stored."


class BlobHashMismatch(HeatCrewError):
    status = 422
    code = "blob_hash_mismatch"
    default_message = "The uploaded bytes do not hash to the SHA-256 named in the URL."


class BlobTooLarge(HeatCrewError):
    status = 413
    code = "blob_too_large"
    default_message = "The blob is larger than the limit."


class BlobStoreUnavailable(HeatCrewError):
    status = 503
    code = "blob_store_unavailable"
    default_message = "The blob store cannot be reached."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers.setdefault("Retry-After", "5")  # as every 503: send the same request again later


class DatabaseUnavailable(HeatCrewError):
    """503: the database cannot be reached or did not answer in time; nothing was applied.

    ``detail.retryable`` is true and ``Retry-After`` says when to send the same request again.
    Raised for every endpoint by the error handlers (``backend.db.failures`` tells which errors).
    """

    status = 503
    code = "database_unavailable"
    default_message = "The database cannot be reached right now; nothing was applied. Send it again later."


class NotReady(HeatCrewError):
    """503 from ``/ready``: ``detail.failed`` names the checks that failed, ``detail.checks`` all."""

    status = 503
    code = "not_ready"
    default_message = "Not ready."


class ClientDisconnected(HeatCrewError):
    """The client closed the connection before its request arrived: nobody reads this answer."""

    status = 400
    code = "client_disconnected"
    default_message = "The client closed the connection before the request body arrived."


class UploadOffsetMismatch(HeatCrewError):
    """409: an append did not start where the server's copy of the unfinished upload ends."""

    status = 409
    code = "upload_offset_mismatch"
    default_message = "The upload does not continue where the server's copy ends; resume from detail.offset."


class UploadQuotaExceeded(HeatCrewError):
    """429: the user has uploaded as much as allowed in the last 24 hours."""

    status = 429
    code = "upload_quota_exceeded"
    default_message = "Upload quota for the last 24 hours reached; try again later."


class PresignUnsupported(Conflict):
    """409: this server stores files itself; upload through ``PUT /api/v1/blobs/{sha256}``."""

    code = "presign_unsupported"
    default_message = "This server has no direct upload URLs; upload with PUT /api/v1/blobs/{sha256}."


class UploadNotFound(NotFound):
    """404: nothing has been uploaded (or it expired) for the completion to verify."""

    code = "upload_not_found"
    default_message = "No upload of this file is waiting to be completed."


class BlobSizeMismatch(HeatCrewError):
    """422: the uploaded file does not have the size that was declared for it."""

    status = 422
    code = "blob_size_mismatch"
    default_message = "The uploaded file does not have the declared size."


class UploadStalled(HeatCrewError):
    """408: no bytes arrived for a while; what did arrive is kept, resume from ``Upload-Offset``."""

    status = 408
    code = "upload_stalled"
    default_message = "No data arrived for too long; the bytes received are kept, resume from detail.offset."
