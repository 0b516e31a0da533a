"""The one error body of every 4xx/5xx answer, and the stable codes it may carry."""

from enum import StrEnum
from typing import Any

import msgspec

__all__ = ("ERROR_STATUS", "PUSH_ANSWER_CODES", "ErrorBody", "ErrorCode")


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
    bad_request = "bad_request"
    """A request HTTP itself cannot take (e.g. a malformed Content-Length)."""
    malformed_json = "malformed_json"
    invalid_body = "invalid_body"
    invalid_input = "invalid_input"
    text_with_nul = "text_with_nul"
    json_too_deep = "json_too_deep"
    unsupported_media_type = "unsupported_media_type"
    body_too_large = "body_too_large"
    not_found = "not_found"
    method_not_allowed = "method_not_allowed"
    invalid_app_version = "invalid_app_version"
    """400: ``X-App-Version`` is not a semantic version (``2.3.1``); fix the app's build, not the queue."""
    app_upgrade_required = "app_upgrade_required"
    """426 on a read, or a push answer ``rejected``: this app is older than the server's minimum
    (``detail.minimum``). Show "update the app"; the queue still syncs its facts meanwhile, and an
    intent refused this way is gone: after the update the person does it again as a new action."""
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
    events_busy = "events_busy"
    """503 with ``Retry-After``: this server holds as many event streams as it may; poll meanwhile."""
    # authorisation and state
    forbidden = "forbidden"
    csrf_token_invalid = "csrf_token_invalid"
    """403 from the web console: a form or htmx request without its session's CSRF token (or with
    a wrong one); nothing was changed. Reload the page and send the form again."""
    console_role_refused = "console_role_refused"
    """403 at the web console's sign-in: the role (technician, inspector) does not use the console."""
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
    answer_expired = "answer_expired"
    """duplicate: this seq was done long ago (at or below ``last_applied_seq``) and its first answer
    is past the server's action-log retention, so ``original_status`` is missing. Mark it done."""
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
    content_disagrees = "content_disagrees"
    """rejected: a receipt's technician or times disagree with the order's records; the answer's
    ``disagreeing`` names the fields. Write the receipt again from the order as the server has it
    (pull first), as a new document."""
    signer_role_mismatch = "signer_role_mismatch"
    invalid_refusal = "invalid_refusal"
    unknown_instrument = "unknown_instrument"
    instrument_expired = "instrument_expired"
    instrument_retired = "instrument_retired"
    invalid_instrument_id = "invalid_instrument_id"
    filter_required = "filter_required"
    pdf_font_missing = "pdf_font_missing"
    # review
    review_decided = "review_decided"
    """409: the item was approved or rejected already; a decision is made once."""
    redo_open = "redo_open"
    """409: a redo request of this item is still open; wait for its answer."""
    order_cancelled = "order_cancelled"
    """409: the order was cancelled: nothing about it can be redone."""
    no_assignee = "no_assignee"
    """409: the order has nobody to redo the work; assign it first."""
    not_your_team = "not_your_team"
    """403: the company's policy lets a supervisor decide only on their own team's items."""
    invalid_due = "invalid_due"
    """400: a redo request is due in the past."""
    unknown_redo_request = "unknown_redo_request"
    """rejected (404): no such redo request for this user (another user's or company's does not exist)."""
    # administration
    password_too_short = "password_too_short"
    import_rejected = "import_rejected"
    demo_refused = "demo_refused"


_E = ErrorCode
PUSH_ANSWER_CODES: frozenset[ErrorCode] = frozenset(
    {
        _E.invalid_payload,
        _E.unknown_action_type,
        _E.unsupported_action_version,
        _E.blob_missing,
        _E.blob_refused,
        _E.gap,
        _E.after_waiting,
        _E.seq_repeated,
        _E.seq_reused,
        _E.action_id_reused,
        _E.server_error,
        _E.answer_expired,
        _E.content_disagrees,
    }
)
"""Codes that only ever appear in a push answer (``ActionResult.code``), never as an HTTP error.
A push answer may also carry an HTTP-error code of the rule that refused the action (e.g.
``illegal_transition``, ``not_assignee``, ``photos_missing``)."""

#: The HTTP status each error code is answered with (a few have a second one, declared by the
#: operation that uses it: ``unknown_household`` is 400 in an order's body, 404 in a path).
ERROR_STATUS: dict[ErrorCode, int] = {
    _E.bad_request: 400,
    _E.malformed_json: 400,
    _E.invalid_body: 400,
    _E.invalid_input: 400,
    _E.text_with_nul: 400,
    _E.json_too_deep: 400,
    _E.unsupported_media_type: 415,
    _E.body_too_large: 413,
    _E.not_found: 404,
    _E.method_not_allowed: 405,
    _E.invalid_app_version: 400,
    _E.app_upgrade_required: 426,
    _E.not_authenticated: 401,
    _E.invalid_credentials: 401,
    _E.invalid_token: 401,
    _E.token_expired: 401,
    _E.refresh_token_invalid: 401,
    _E.refresh_token_reused: 401,
    _E.refresh_token_expired: 401,
    _E.session_revoked: 401,
    _E.device_revoked: 401,
    _E.device_mismatch: 401,
    _E.device_registered_elsewhere: 409,
    _E.user_disabled: 401,
    _E.rate_limited: 429,
    _E.login_busy: 503,
    _E.events_busy: 503,
    _E.forbidden: 403,
    _E.csrf_token_invalid: 403,
    _E.console_role_refused: 403,
    _E.conflict: 409,
    _E.username_taken: 409,
    _E.blob_not_found: 404,
    _E.blob_hash_mismatch: 422,
    _E.blob_too_large: 413,
    _E.invalid_sha256: 400,
    _E.blob_store_unavailable: 503,
    _E.database_unavailable: 503,
    _E.not_ready: 503,
    _E.client_disconnected: 400,
    _E.internal_error: 500,
    _E.blob_size_mismatch: 422,
    _E.upload_offset_mismatch: 409,
    _E.upload_quota_exceeded: 429,
    _E.upload_not_found: 404,
    _E.presign_unsupported: 409,
    _E.upload_stalled: 408,
    _E.illegal_transition: 409,
    _E.not_assignee: 409,
    _E.not_assignable: 400,
    _E.invalid_window: 400,
    _E.unknown_household: 400,
    _E.unknown_team: 400,
    _E.unknown_user: 400,
    _E.household_mismatch: 400,
    _E.photos_missing: 409,
    _E.received_in_future: 400,
    _E.received_too_old: 400,
    _E.batch_too_large: 413,
    _E.unsupported_image_format: 422,
    _E.image_too_large: 422,
    _E.corrupt_image: 422,
    _E.unknown_document: 404,
    _E.unknown_measurement: 404,
    _E.invalid_document: 400,
    _E.document_frozen: 409,
    _E.already_superseded: 409,
    _E.supersede_mismatch: 400,
    _E.content_mismatch: 400,
    _E.signer_role_mismatch: 403,
    _E.invalid_refusal: 400,
    _E.unknown_instrument: 400,
    _E.instrument_expired: 400,
    _E.instrument_retired: 400,
    _E.invalid_instrument_id: 400,
    _E.filter_required: 400,
    _E.pdf_font_missing: 503,
    _E.review_decided: 409,
    _E.redo_open: 409,
    _E.order_cancelled: 409,
    _E.no_assignee: 409,
    _E.not_your_team: 403,
    _E.invalid_due: 400,
    _E.unknown_redo_request: 404,
    _E.password_too_short: 400,
    _E.import_rejected: 422,
    _E.demo_refused: 409,
}
