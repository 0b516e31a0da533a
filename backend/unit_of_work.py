"""The session every transaction of the service runs in, and the one place that says when the
work waiting in it is done.

Some writes do not go to the database at once. A push batch buffers its bulk rows, and the locked
orders and clocks it writes back (``db.buffer``, built into :class:`~backend.db.buffer.BufferedSession`);
every change phones must hear of leaves a note that becomes one version of the change feed at
commit (``sync.changes``). Other work guards or forgets: signed records refuse edits at each flush
(``evidence.documents``), and a batch's in-memory copies end with its locks
(``work_orders.locking``). Each of those modules only offers plain functions; this is where they
run, in this order:

=====================  ==================================================================
moment                 what runs
=====================  ==================================================================
each statement         pending bulk rows are written first (so the statement sees them)
each flush             signed records are checked unchanged; the entities of the KPI rollup that
                       the flush writes are noted; the bulk rows go out around it (their rows of
                       the KPI tables are noted as they are sent)
an ORM photo is added  it counts for the batch's completion check
commit                 (a savepoint's release is no commit: all of this waits for the real one)
                       the orders noted for review are settled (their flags computed together),
                       then the change log (one version per company; buffered on PostgreSQL),
                       then the entities noted for the KPI rollup (the bulk rows go out first,
                       with the change log; their deltas, buffered), then what is still
                       pending, then the audit events (each company's chain locked only from
                       here), then COMMIT; this runs before the buffer's own commit step
after commit           SQLite: the worker's live hub hears what the feed and revocations got
rollback               pending rows and the batch's copies are dropped (a savepoint's too; its
                       scope in ``sync.push`` also restores the change-feed, review and audit
                       notes)
end of transaction     everything that lived with the transaction's locks is forgotten, and
                       review, rollup and audit notes not committed
=====================  ==================================================================

Only sessions of this class (``Database.session`` in the service, see ``backend.context``) do
any of this; nothing is registered on SQLAlchemy's own session class.
"""

from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import SessionTransaction

from backend.audit import service as audit
from backend.db import buffer
from backend.evidence import documents
from backend.reports import rollup
from backend.review import entry as review_entry
from backend.sync import changes, live
from backend.work_orders import locking

__all__ = ("UnitOfWork",)


class UnitOfWork(buffer.BufferedSession):
    """A transaction: its statements, the work waiting for commit, and what ends with it."""


live.install(UnitOfWork)  # after commit: the worker's hub hears what the feed got (SQLite)


@event.listens_for(UnitOfWork, "before_flush")
def _before_flush(session: UnitOfWork, _context: Any, _instances: Any) -> None:
    documents.refuse_edits(session)
    rollup.observe_flush(session)


@event.listens_for(UnitOfWork, "transient_to_pending")
def _added(session: UnitOfWork, instance: object) -> None:
    locking.photo_added(session, instance)


@event.listens_for(UnitOfWork, "before_commit", insert=True)
def _before_commit(session: UnitOfWork) -> None:
    if session.in_nested_transaction():
        # SQLAlchemy calls this at a savepoint's release too (a kept action scope of a push): the
        # notes wait for the real commit, so the audit chain's lock is taken only there. The bulk
        # rows still go out here (BufferedSession's own listener, and the scope's keep). Settled
        # once for the whole batch, review adds flag rows of items it updates and of items it
        # opens in one go: db.buffer sends every table after the tables it refers to.
        return
    review_entry.settle(session)  # first: it reads and writes like any other work of the transaction
    # PostgreSQL: buffered, so it goes out with the bulk rows, which the rollup sends next.
    changes.write_log(session)
    rollup.settle(session)  # after every other change of orders: it reads them as they end
    buffer.write_rows(session)  # every pending write in one round trip (PostgreSQL: one statement)
    audit.write_pending(session)  # last: the chain's lock is held only for the commit


@event.listens_for(UnitOfWork, "after_rollback")
def _after_rollback(session: UnitOfWork) -> None:
    locking.forget_locked(session)


@event.listens_for(UnitOfWork, "after_transaction_end")
def _after_transaction_end(session: UnitOfWork, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        locking.end_batch(session)
        review_entry.forget(session)
        rollup.forget(session)
        audit.forget_pending(session)
