"""Work-order flows, in one place for their callers (controllers, sync handlers, the CLI).

Each lives in the module of its noun: ``dispatch`` (the office's moves), ``field`` (the field's
intents and facts), ``revisits``, ``timeline`` (how every change is recorded) and ``locking`` (a
push batch's orders).
"""

from backend.work_orders.dispatch import approve_return, assign, cancel, close, create_order, refuse_return
from backend.work_orders.field import (
    accept,
    complete,
    depart,
    haversine_m,
    note,
    record_arrival,
    record_contact,
    record_no_access,
    request_return,
    set_appointment,
    start_work,
)
from backend.work_orders.locking import forget_locked, get_order_for_update, lock_orders, note_photo
from backend.work_orders.revisits import assign_revisit, record_revisit_outcome
from backend.work_orders.timeline import (
    FieldTime,
    has_order_at,
    late_fact_flags,
    online,
    require_field_involvement,
)

__all__ = (
    "FieldTime",
    "accept",
    "approve_return",
    "assign",
    "assign_revisit",
    "cancel",
    "close",
    "complete",
    "create_order",
    "depart",
    "forget_locked",
    "get_order_for_update",
    "has_order_at",
    "haversine_m",
    "late_fact_flags",
    "lock_orders",
    "note",
    "note_photo",
    "online",
    "record_arrival",
    "record_contact",
    "record_no_access",
    "record_revisit_outcome",
    "refuse_return",
    "request_return",
    "require_field_involvement",
    "set_appointment",
    "start_work",
)
