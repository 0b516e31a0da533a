"""The one error body of every 4xx/5xx answer, and the stable codes it may carry."""

from enum import StrEnum
from typing import Any

import msgspec

__all__ = ("ErrorBody", "ErrorCode")


class ErrorBody(msgspec.Struct):
    code: str
    """Stable machine code; clients branch on this, never on the message."""
    message: str
    """For people; may be reworded or translated."""
    detail: Any = None
    """Structured extra, e.g. the limit that was exceeded or the fields that failed. A server-side
    failure that will pass (``database_unavailable``) says ``{"retryable": true}`` here and sends
    ``Retry-After``."""


class ErrorCode(StrEnum):
    """Codes the server answers with. Never renamed; new ones may be added."""

    # request shape
    malformed_json = "malformed_json"
    invalid_body = "invalid_body"
    invalid_input = "invalid_input"
    text_with_nul = "text_with_nul"
    json_too_deep = "json_too_deep"
    unsupported_media_type = "unsupported_media_type"
    body_too_large = "body_too_large"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    # authentication
    not_authenticated = "not_authenticated"
    invalid_credentials = "invalid_credentials"
    invalid_token = "invalid_token"
    token_expired = "token_expired"
    refresh_token_invalid = "refresh_token_invalid"
    refresh_token_reused = "refresh_token_reused"
    refresh_token_expired = "refresh_token_expired"
    session_revoked = "session_revoked"
    device_revoked = "device_revoked"
    device_mismatch = "device_mismatch"
    device_registered_elsewhere = "device_registered_elsewhere"
    user_disabled = "user_disabled"
    rate_limited = "rate_limited"
    login_busy = "login_busy"
    # authorisation and state
    forbidden = "forbidden"
    conflict = "conflict"
    username_taken = "username_taken"
    # blobs
    blob_not_found = "blob_not_found"
    blob_hash_mismatch = "blob_hash_mismatch"
    blob_too_large = "blob_too_large"
    invalid_sha256 = "invalid_sha256"
    # server side
    blob_store_unavailable = "blob_store_unavailable"
    database_unavailable = "database_unavailable"
    """503 with ``detail.retryable`` true and ``Retry-After``: send the same request again later."""
    not_ready = "not_ready"
    client_disconnected = "client_disconnected"
    internal_error = "internal_error"
    # resumable and direct uploads
    blob_size_mismatch = "blob_size_mismatch"
    upload_offset_mismatch = "upload_offset_mismatch"
    upload_quota_exceeded = "upload_quota_exceeded"
    upload_not_found = "upload_not_found"
    presign_unsupported = "presign_unsupported"
    upload_stalled = "upload_stalled"
    # work orders
    illegal_transition = "illegal_transition"
    not_assignee = "not_assignee"
    not_assignable = "not_assignable"
    invalid_window = "invalid_window"
    unknown_household = "unknown_household"
    unknown_team = "unknown_team"
    unknown_user = "unknown_user"
    household_mismatch = "household_mismatch"
    photos_missing = "photos_missing"
    received_in_future = "received_in_future"
    received_too_old = "received_too_old"
    # sync: the batch
    batch_too_large = "batch_too_large"
    # sync: one action's answer (``ActionResult.code``)
    invalid_payload = "invalid_payload"
    """rejected: the payload does not fit its ``(type, v)``; the message says where."""
    unknown_action_type = "unknown_action_type"
    """rejected: no action of this type exists (a misspelled type)."""
    unsupported_action_version = "unsupported_action_version"
    """rejected: the type exists, this version does not (any more); the message names those accepted."""
    blob_missing = "blob_missing"
    """waiting: upload the files in ``missing``, then push again from this action."""
    blob_refused = "blob_refused"
    """rejected: an attached file was refused when it was uploaded (bad image, too large)."""
    gap = "gap"
    """out_of_order: an earlier seq has not arrived; resend from ``last_applied_seq + 1``."""
    after_waiting = "after_waiting"
    """out_of_order: an earlier action is waiting for its file; resend from it after the upload."""
    seq_repeated = "seq_repeated"
    """rejected: the same seq appears twice in one batch; only the first counts."""
    seq_reused = "seq_reused"
    """rejected: this seq was already used by another action; the device's queue is out of step."""
    action_id_reused = "action_id_reused"
    """rejected: this action id was sent before with other content; a new action needs a new id."""
    server_error = "server_error"
    """rejected: the server could not apply this action; it is kept for review and replay."""
    # photos
    unsupported_image_format = "unsupported_image_format"
    image_too_large = "image_too_large"
    corrupt_image = "corrupt_image"
    # signed documents and measurements
    unknown_document = "unknown_document"
    unknown_measurement = "unknown_measurement"
    invalid_document = "invalid_document"
    document_frozen = "document_frozen"
    already_superseded = "already_superseded"
    supersede_mismatch = "supersede_mismatch"
    content_mismatch = "content_mismatch"
    signer_role_mismatch = "signer_role_mismatch"
    invalid_refusal = "invalid_refusal"
    unknown_instrument = "unknown_instrument"
    instrument_expired = "instrument_expired"
    instrument_retired = "instrument_retired"
    invalid_instrument_id = "invalid_instrument_id"
    filter_required = "filter_required"
    pdf_font_missing = "pdf_font_missing"
    # administration
    password_too_short = "password_too_short"
    import_rejected = "import_rejected"
    demo_refused = "demo_refused"
