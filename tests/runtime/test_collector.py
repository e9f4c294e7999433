"""The serving processes' garbage-collector thresholds (processes.gc_thresholds)."""

from __future__ import annotations

import gc

import pytest
from dingskill.runtime.app import tune_collector
from dingskill.runtime.config import ConfigError, load_config


def test_thresholds_default_set_and_checked():
    assert load_config(None).get("processes.gc_thresholds") == [10000, 20, 20]
    before = gc.get_threshold()
    try:
        tune_collector([5000, 15, 12])
        assert gc.get_threshold() == (5000, 15, 12)
    finally:
        gc.set_threshold(*before)
    for bad in ([1, 2], [0, 10, 10], [700, True, 10]):
        with pytest.raises(ConfigError, match=r"processes\.gc_thresholds"):
            load_config(None, overrides={"processes": {"gc_thresholds": bad}})


def test_dingskill_run_applies_them(monkeypatch, tmp_path):
    """`dingskill run` sets them before serving (the runtime itself is not started here)."""
    import asyncio

    from dingskill.cli import runtime_cmd
    from dingskill.cli.main import main

    seen = []
    monkeypatch.setattr("dingskill.runtime.app.tune_collector", seen.append)

    class Stop(Exception):
        pass

    def no_run(coro):
        coro.close()
        raise Stop

    monkeypatch.setattr(asyncio, "run", no_run)
    monkeypatch.setenv("DINGSKILL_APP_KEY", "k")
    monkeypatch.setenv("DINGSKILL_APP_SECRET", "s")
    monkeypatch.setattr(runtime_cmd, "_supervise", lambda *a: 0)
    with pytest.raises(Stop):
        main(["run", "--home", str(tmp_path / "home"), "--port", "0"])
    assert seen == [[10000, 20, 20]]
