"""Shared test fixtures: paths of the project and of the public data beside it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(ROOT))
from tests.runtime.harness import timeout_scale  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """The per-test time limit (pytest-timeout, ``timeout`` in pyproject.toml) stretched like
    every wait in the harness: by ``DINGSKILL_TEST_TIMEOUT_SCALE`` or the machine's load."""
    try:
        base = config.getini("timeout")  # registered by pytest-timeout
    except ValueError:
        base = None
    if not base or config.getoption("timeout", None):
        return
    limit = float(base) * timeout_scale()
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(limit))


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def clinc_home() -> Path:
    path = SHARED_DATA / "clinc150"
    if not (path / "data_full.json").exists():
        pytest.skip(f"CLINC150 not found at {path}")
    return path
