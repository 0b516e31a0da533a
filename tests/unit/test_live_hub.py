"""The hub's rules on their own: what it may answer from memory, and when it must not learn."""

import asyncio
import sqlite3
import tempfile
import uuid
from pathlib import Path

from backend.sync.live import FEED_CHANNEL, WHOLE_VERSION, LiveHub
from backend.sync.pull import Cursor

COMPANY, USER, OTHER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
SESSION, OTHER_SESSION = uuid.uuid4(), uuid.uuid4()


def started() -> LiveHub:
    # The hub watches its SQLite file's data_version: give it a quiet file of its own.
    path = Path(tempfile.mkdtemp(prefix="live-hub-")) / "quiet.db"
    sqlite3.connect(path).close()
    hub = LiveHub(database_url=f"sqlite:///{path}")
    asyncio.run(hub.start())
    assert hub.known
    return hub


def at(version: int, *, user: uuid.UUID = USER, epoch: str = "e1", row: int = WHOLE_VERSION) -> Cursor:
    return Cursor(epoch=epoch, user=user, version=version, row=row)


def learned(hub: LiveHub, bound: int = 10) -> LiveHub:
    hub.learn(
        hub.stamp(),
        company_id=COMPANY,
        user_id=USER,
        session_id=SESSION,
        epoch="e1",
        pruned_below=0,
        bound=bound,
    )
    return hub


def test_a_cursor_at_or_past_the_bound_of_the_users_epoch_is_answered() -> None:
    hub = learned(started())
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(12))
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(9))
    assert not hub.answers_empty(
        session_id=SESSION, user_id=USER, cursor=at(10, row=3)
    )  # mid-version: rows may follow
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10, epoch="e0"))
    assert not hub.answers_empty(session_id=OTHER_SESSION, user_id=OTHER, cursor=at(10))
    assert not hub.answers_empty(
        session_id=OTHER_SESSION, user_id=OTHER, cursor=at(10, user=OTHER)
    )  # never learned


def test_notices_raise_the_bound_for_the_user_or_the_whole_company() -> None:
    hub = learned(started())
    hub.dispatch(FEED_CHANNEL, f"f|{COMPANY.hex}|11|{OTHER.hex}")
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    hub.dispatch(FEED_CHANNEL, f"f|{COMPANY.hex}|12|{USER.hex},{OTHER.hex}")
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(12))
    hub.dispatch(FEED_CHANNEL, f"f|{COMPANY.hex}|20|*")
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(12))
    hub.dispatch(FEED_CHANNEL, f"c|{COMPANY.hex}")  # a new epoch or pruning: nothing is known
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(30))


def test_nothing_is_learned_from_a_read_a_notice_overtook() -> None:
    hub = started()
    stamp = hub.stamp()
    hub.feed(COMPANY, 15, [USER])  # may have committed after the read's snapshot
    hub.learn(
        stamp, company_id=COMPANY, user_id=USER, session_id=SESSION, epoch="e1", pruned_below=0, bound=10
    )
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    learned(hub, bound=15)
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(15))


def test_a_lost_listener_forgets_everything_and_refuses_reads_begun_before() -> None:
    hub = learned(started())
    stamp = hub.stamp()
    hub._on_lost()
    assert not hub.known
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    hub._on_connected()
    hub.learn(
        stamp, company_id=COMPANY, user_id=USER, session_id=SESSION, epoch="e1", pruned_below=0, bound=10
    )
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))


def test_pruned_history_and_revocations_are_not_answered() -> None:
    hub = started()
    hub.learn(
        hub.stamp(),
        company_id=COMPANY,
        user_id=USER,
        session_id=SESSION,
        epoch="e1",
        pruned_below=50,
        bound=10,
    )
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(49))
    session = uuid.uuid4()
    assert not hub.is_revoked(session_id=session, device_id="phone-1", user_id=USER)
    hub.dispatch("heatcrew_auth", "d|phone-1")
    assert hub.is_revoked(session_id=session, device_id="phone-1", user_id=USER)
    hub.dispatch("heatcrew_auth", f"s|{session}")
    assert hub.is_revoked(session_id=session, device_id="other", user_id=OTHER)


def test_notices_it_cannot_read_are_dropped() -> None:
    hub = learned(started())
    for payload in ("", "x|1", "f|nope|1|*", f"f|{COMPANY.hex}|one|*", "c|"):
        hub.dispatch(FEED_CHANNEL, payload)
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))


def test_a_change_for_everyone_stays_known_when_another_user_relearns_the_company(monkeypatch) -> None:
    """Found by the hostile review: a stale company entry relearned by one user's pull dropped the
    change for everyone noticed before, so another user's fresh head answered it as empty."""
    import backend.sync.live as live_module

    now = [1000.0]
    monkeypatch.setattr(live_module.time, "monotonic", lambda: now[0])
    hub = started()
    hub.learn(
        hub.stamp(),
        company_id=COMPANY,
        user_id=OTHER,
        session_id=OTHER_SESSION,
        epoch="e1",
        pruned_below=0,
        bound=10,
    )
    now[0] += 200
    learned(hub, bound=10)  # USER's head: fresh for another max_age
    hub.dispatch(FEED_CHANNEL, f"f|{COMPANY.hex}|20|*")
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    now[0] += 150  # the company entry (learned by OTHER at 1000) is stale; USER's head is not
    hub.learn(
        hub.stamp(),
        company_id=COMPANY,
        user_id=OTHER,
        session_id=OTHER_SESSION,
        epoch="e1",
        pruned_below=0,
        bound=20,
    )
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(20))


def test_only_a_session_a_database_pull_admitted_since_the_listener_connected_is_answered() -> None:
    """Found by the hostile review: a session revoked before the hub started (a restart) or while
    its listener was away was never heard revoked, and was answered from memory on the head its
    user's other phone kept fresh."""
    hub = learned(started())
    revoked_earlier = uuid.uuid4()
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    assert not hub.answers_empty(session_id=revoked_earlier, user_id=USER, cursor=at(10))
    hub._on_lost()
    hub._on_connected()
    hub.learn(
        hub.stamp(), company_id=COMPANY, user_id=USER, session_id=revoked_earlier, epoch="e1",
        pruned_below=0, bound=10,
    )  # fmt: skip
    assert hub.answers_empty(session_id=revoked_earlier, user_id=USER, cursor=at(10))
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))  # not since


def test_a_commit_by_another_connection_on_sqlite_drops_what_was_learned() -> None:
    """On SQLite the hub hears its own worker; another process's commit (the command line's new
    epoch, a revocation) moves the file's data_version, and the next cached answer is refused."""
    hub = learned(started())
    assert hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    path = hub._sqlite_path
    other = sqlite3.connect(path)
    with other:
        other.execute("CREATE TABLE IF NOT EXISTS elsewhere (x)")
        other.execute("INSERT INTO elsewhere VALUES (1)")
    other.close()
    assert not hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
    assert (
        hub.answers_empty(session_id=SESSION, user_id=USER, cursor=at(10)) is False
    )  # until a database pull relearns
    assert learned(hub).answers_empty(session_id=SESSION, user_id=USER, cursor=at(10))
