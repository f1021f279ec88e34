"""partitions/local/file_log.py: records come back after a restart; a record cut short by a
kill is dropped, and appends go on after the last whole one."""

from __future__ import annotations

from pathlib import Path

from perdure.engine.model import Target
from perdure.engine.records import AnnounceLeader, Envelope, Invoke
from perdure.partitions.local.clock import VirtualClock
from perdure.partitions.local.file_log import FileLog


def test_records_survive_a_restart_and_a_torn_tail_is_dropped(tmp_path: Path) -> None:
    clock = VirtualClock()
    first = FileLog(clock, tmp_path)
    first.put(Envelope(AnnounceLeader("a"), 1))
    first.put(Envelope(Invoke("inv_x", Target("s", "h"), b"1")))
    first.close()
    whole = first.path.stat().st_size
    with first.path.open("ab") as f:
        f.write(b"\x00\x00\x01\x02\x03")  # a frame cut short by kill -9

    again = FileLog(clock, tmp_path)
    assert [type(r.command) for r in again.records()] == [AnnounceLeader, Invoke]
    assert again.path.stat().st_size == whole, "the torn record is gone"
    again.put(Envelope(AnnounceLeader("b"), 2))
    again.close()
    third = FileLog(clock, tmp_path)
    commands = [r.command for r in third.records()]
    assert commands[-1] == AnnounceLeader("b") and len(commands) == 3
    assert [r.epoch for r in third.records()] == [1, 0, 2]
    third.close()
