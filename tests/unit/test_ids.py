"""The id source: random for the service, seeded only inside ``ids_from`` (the examples' generator)."""

import uuid

from backend import ids
from backend.auth.tokens import new_refresh_token


def _seeded() -> ids.SeededIds:
    return ids.SeededIds("a seed", start_ms=1_796_603_400_000)


def test_seeded_ids_repeat_from_the_seed_and_keep_the_uuidv7_shape_and_order() -> None:
    with ids.ids_from(_seeded()):
        first = [ids.new_id() for _ in range(50)]
        token = new_refresh_token()
    with ids.ids_from(_seeded()):
        again = [ids.new_id() for _ in range(50)]
        assert new_refresh_token() == token
    assert first == again
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in first)
    assert first == sorted(first)
    assert first[0].int >> 80 == 1_796_603_400_001  # the millisecond timestamp


def test_outside_the_block_ids_and_tokens_are_random_again() -> None:
    with ids.ids_from(_seeded()):
        seeded_token = new_refresh_token()
    assert isinstance(ids._source, ids.RandomIds)
    assert new_refresh_token() != seeded_token
    assert len({new_refresh_token() for _ in range(100)}) == 100
    assert ids.new_id().version == 7
