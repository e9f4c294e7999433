"""Shared test fixtures: paths of the project and of the public data beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def clinc_home() -> Path:
    path = SHARED_DATA / "clinc150"
    if not (path / "data_full.json").exists():
        pytest.skip(f"CLINC150 not found at {path}")
    return path
