"""The live channel attacked: one user (one stolen token, a phone reconnecting in a loop) cannot
take the worker's event streams from everybody else."""

from collections.abc import Callable

from backend.sync.live import MAX_STREAMS_PER_USER
from tests.scenarios import test_live
from tests.scenarios.test_live import Server, Stream, head_of, login, wait_until

live_settings = test_live.live_settings  # the fixtures of the live channel's own tests
servers = test_live.servers


def test_one_user_cannot_hold_the_workers_streams(servers: Callable[..., Server]) -> None:
    server = servers(events_max_streams=MAX_STREAMS_PER_USER + 1)
    hostile = login(server, "tech1", "phone-greedy")
    opened = []
    try:
        for _ in range(MAX_STREAMS_PER_USER + 3):
            stream = Stream(server, hostile)
            assert stream.status == 200
            head_of(stream.next_event())
            opened.append(stream)
        # Every new stream ended the user's oldest: never more than their share is held.
        for old in opened[:3]:
            assert "closed" in old.next_event(timeout=3)
        assert server.ctx.live.streams == MAX_STREAMS_PER_USER
        other = Stream(server, login(server, "tech2", "phone-honest"))
        try:
            assert other.status == 200
            head_of(other.next_event())
        finally:
            other.close()
    finally:
        for stream in opened:
            stream.close()
    wait_until(lambda: server.ctx.live.streams == 0, "the streams are gone")
