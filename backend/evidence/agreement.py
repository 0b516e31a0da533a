"""A receipt must say what the server knows: who did the work, when they arrived, when they finished.

A resident signs the paper the phone shows; a paper that names another technician, or an arrival
half an hour from the one recorded at the door, would be signed and verified as ``valid`` all
the same. So a receipt is compared with the order's own records when it is issued, and refused
(``content_disagrees``, naming the fields) when it disagrees:

- ``technician_name`` and ``staff_number``: those of the user the order is assigned to (the full
  name as ``/api/v1/me`` gives it; spacing and case aside);
- ``arrived_at``: the latest admitted arrival recorded for the order (a receipt may leave it out,
  for work done without a visit; naming one when none is recorded disagrees);
- ``completed_at``: the order's recorded completion if there is one (a receipt issued again after
  the order was completed); otherwise the time of the ``document.issue`` action itself, since the
  order is issue → sign → complete and the phone writes the receipt as the work ends.

The receipt's times are read by the phone's clock: they are corrected by the same skew as the
action that carries them before they are compared with the server's corrected times. The
tolerance is ``HEATCREW_RECEIPT_TIME_TOLERANCE`` (10 minutes by default).
"""

from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from backend.auth.models import User
from backend.errors import InvalidInput
from backend.work_orders.models import Arrival, WorkOrder
from backend.work_orders.service import FieldTime
from mobile_contract.documents import ReceiptV1

__all__ = ("ContentDisagrees", "check_receipt")


class ContentDisagrees(InvalidInput):
    code = "content_disagrees"

    def __init__(self, fields: list[str], records: dict[str, str | None]) -> None:
        super().__init__(
            f"The receipt disagrees with the order's records: {', '.join(fields)}. Write it again from "
            "the order as the server has it.",
            detail={"disagreeing": fields, "records": records},
        )
        self.fields = fields


def check_receipt(
    session: Session, *, receipt: ReceiptV1, order: WorkOrder, when: FieldTime, tolerance: timedelta
) -> None:
    """Raise :class:`ContentDisagrees` unless the receipt agrees with the order's records."""
    technician = session.get(User, order.assignee_id) if order.assignee_id is not None else None
    arrived = _last_arrival(session, order)
    completed = order.completed_at or when.corrected_at
    # The phone's clock, corrected as the action's own time was.
    shift = when.corrected_at - when.occurred_at
    fields: list[str] = []
    if technician is None or _name(receipt.technician_name) != _name(technician.full_name):
        fields.append("technician_name")
    if technician is None or receipt.staff_number != technician.staff_number:
        fields.append("staff_number")
    if receipt.arrived_at is not None and not _close(receipt.arrived_at + shift, arrived, tolerance):
        fields.append("arrived_at")
    if not _close(receipt.completed_at + shift, completed, tolerance):
        fields.append("completed_at")
    if fields:
        raise ContentDisagrees(
            fields,
            {
                "technician_name": technician.full_name if technician else None,
                "staff_number": technician.staff_number if technician else None,
                "arrived_at": arrived.isoformat() if arrived else None,
                "completed_at": completed.isoformat(),
            },
        )


def _name(text: str) -> str:
    """Spacing and case are not a disagreement: the phone may wrap or retype the name."""
    return " ".join(text.split()).casefold()


def _close(moment: datetime, recorded: datetime | None, tolerance: timedelta) -> bool:
    return recorded is not None and abs(moment - recorded) <= tolerance


def _last_arrival(session: Session, order: WorkOrder) -> datetime | None:
    return session.exec(
        select(Arrival.corrected_at)
        .where(Arrival.order_id == order.id, Arrival.outcome == "admitted")
        .order_by(col(Arrival.corrected_at).desc())
        .limit(1)
    ).first()
