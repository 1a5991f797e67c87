"""What a doorbell listener wakes for: rings it has not heard (tailable cursors repeat some)."""

from __future__ import annotations

from ansible_collections.selfhosted.github_runners.plugins.module_utils._reactive.doorbell import _Heard


def rings(*ids: int) -> list[dict[str, object]]:
    return [{"_id": i, "pool": "small"} for i in ids]


def test_a_ring_read_again_is_not_new() -> None:
    heard = _Heard()
    assert heard.new(rings(1, 2)) == rings(1, 2)
    assert heard.new(rings(2, 3)) == rings(3)  # a cursor that returned ring 2 twice
    assert heard.new(rings(1, 2, 3)) == []  # a reopened cursor, from the oldest ring kept


def test_only_the_newest_ids_are_kept() -> None:
    heard = _Heard(keep=3)
    heard.new(rings(1, 2, 3, 4))
    assert heard.new(rings(2, 3, 4)) == []
    assert heard.new(rings(1)) == rings(1)  # forgotten: the collection no longer holds it either
