"""Stage lines and ``track``: silent by default, one line per stage when on, periodic lines in a log."""

from __future__ import annotations

import io
import time

import pytest
from tqdm import tqdm

from lcsc.errors import CheckpointError
from lcsc.progress import (
    enable_stage_lines,
    failure_reason,
    reset_stage_times,
    stage,
    stage_line,
    stage_times,
    ticking,
    track,
)


@pytest.fixture
def log():
    stream = io.StringIO()
    enable_stage_lines(True, stream)
    reset_stage_times()
    yield stream
    enable_stage_lines(False)


def test_silent_unless_turned_on(capsys) -> None:
    enable_stage_lines(False)
    stage_line("nobody hears this")
    with stage("quiet"):
        pass
    assert list(track([1, 2], desc="x", progress=False)) == [1, 2]
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_stage_writes_start_and_end_and_sums_its_time(log) -> None:
    with stage("reference features (digits)", "10 images"):
        pass
    with stage("reference features (digits)"):
        pass
    lines = log.getvalue().splitlines()
    assert lines[0] == "[lcsc] reference features (digits): 10 images …"
    assert lines[1].startswith("[lcsc] reference features (digits): ") and lines[1].endswith(" s")
    assert lines[2] == "[lcsc] reference features (digits) …" and len(lines) == 4
    assert set(stage_times()) == {"reference features (digits)"} and stage_times()["reference features (digits)"] >= 0


def test_stage_keeps_its_time_when_it_fails(log) -> None:
    with pytest.raises(ValueError), stage("fails"):
        raise ValueError("bad")
    assert "fails" in stage_times() and log.getvalue().splitlines()[-1].startswith("[lcsc] fails: ")


def test_a_failing_stage_ends_in_failed_and_the_reason(log) -> None:
    """Issue 36: not a time, which reads as success; the error itself propagates unchanged."""
    message = "/data/ckpts/ckpt-000000200.pt: refused: loading it needs pickled objects beyond tensors"
    with pytest.raises(CheckpointError) as info, stage("checkpoint stack", "reading 2 checkpoints"):
        raise CheckpointError(message)
    assert str(info.value) == message
    assert log.getvalue().splitlines() == [
        "[lcsc] checkpoint stack: reading 2 checkpoints …",
        "[lcsc] checkpoint stack: failed (/data/ckpts/ckpt-000000200.pt: refused: loading it needs pi…)"]
    for exc, reason in [(KeyboardInterrupt(), "interrupted"), (OSError(), "OSError"),
                        (ValueError("first line\nsecond line"), "first line")]:
        with pytest.raises(type(exc)), stage("s", heartbeat_s=60.0):
            raise exc
        assert log.getvalue().splitlines()[-1] == f"[lcsc] s: failed ({reason})"
    assert failure_reason(ValueError("x" * 100), width=10) == "xxxxxxxxx…"


def test_track_in_a_log_writes_counts_and_yields_every_item(log) -> None:
    assert list(track(range(3), desc="reading checkpoints", unit="checkpoints", every_s=0.0)) == [0, 1, 2]
    assert log.getvalue().splitlines() == [f"[lcsc] reading checkpoints: {i}/3 checkpoints, 0 s, about 0 s left"
                                           for i in (1, 2, 3)]
    log.truncate(0), log.seek(0)
    assert list(track(iter("ab"), desc="batches", unit="batches of 4", every_s=0.0)) == ["a", "b"]  # no length
    assert log.getvalue().splitlines() == ["[lcsc] batches: 1 batches of 4, 0 s", "[lcsc] batches: 2 batches of 4, 0 s"]
    log.truncate(0), log.seek(0)
    assert list(track(range(50), desc="slow", every_s=3600.0)) == list(range(50)) and log.getvalue() == ""


def test_heartbeat_writes_while_a_long_stage_runs(log) -> None:
    with stage("held-out report", heartbeat_s=0.05):
        time.sleep(0.3)
    lines = log.getvalue().splitlines()
    beats = [x for x in lines if x.endswith(" s so far")]
    assert lines[0] == "[lcsc] held-out report …" and len(beats) >= 3 and lines[-1].startswith("[lcsc] held-out report: ")
    log.truncate(0), log.seek(0)
    with stage("short", heartbeat_s=60.0):
        pass
    assert len(log.getvalue().splitlines()) == 2  # no beat, and the thread is gone at once


def test_ticking_redraws_the_bar_within_one_item() -> None:
    stream = io.StringIO()
    bar = tqdm(total=2, desc="LCSC search", file=stream, mininterval=0)
    with ticking(bar, every_s=0.05):
        time.sleep(0.3)
    bar.close()
    assert stream.getvalue().count("LCSC search:   0%") >= 4  # the initial draw and the redraws, before any update
