"""``lcsc search --workers N [--verbose]``: the flag reaches the Ray pool's settings, and its notices are one line on
stderr (no Ray is started here)."""

from __future__ import annotations

import argparse

import pytest

from lcsc.cli.search_pool import _notice, add_pool_options, make_pool

pytest.importorskip("ray")


def _pool(*flags: str):
    p = argparse.ArgumentParser()
    add_pool_options(p)
    args = p.parse_args(["--workers", "2", *flags])
    args.device = "cpu"
    return make_pool(args, lambda a: None, lambda a: None)


def test_ray_logging_is_muted_unless_verbose() -> None:
    quiet, loud = _pool(), _pool("--verbose")
    assert quiet.settings.verbose is False and loud.settings.verbose is True
    assert quiet.on_notice is _notice and loud.on_notice is _notice


def test_a_notice_is_one_line_on_stderr(capsys) -> None:
    _notice("Ray worker 2 (pid 7 on host) died; candidate 5 re-queued (attempt 2 of 3)")
    out, err = capsys.readouterr()
    assert out == "" and err == "Ray worker 2 (pid 7 on host) died; candidate 5 re-queued (attempt 2 of 3)\n"
