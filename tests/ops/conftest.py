"""Fixtures for the operations tests: a real SoftHSM2 token in a temporary folder."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest
from dingskill.security.hsm import default_module

PIN, SO_PIN = "4321", "87654321"


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory):
    """A freshly initialised SoftHSM2 token of its own (own config and token folder); returns
    the environment variables that name it (SOFTHSM2_CONF, DINGSKILL_HSM_*)."""
    util, module = shutil.which("softhsm2-util"), default_module()
    if not util or not module:
        pytest.skip("SoftHSM2 is not installed (scripts/setup.sh installs the softhsm2 package)")
    pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (the 'hsm' extra)")
    root = tmp_path_factory.mktemp("softhsm")
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    label = f"dingskill-test-{uuid.uuid4().hex[:6]}"
    env = {"SOFTHSM2_CONF": str(conf)}
    proc = subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", SO_PIN],
        env={**env, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {
        **env,
        "DINGSKILL_HSM_MODULE": module,
        "DINGSKILL_HSM_TOKEN": label,
        "DINGSKILL_HSM_PIN": PIN,
    }


@pytest.fixture
def hsm_env(softhsm, monkeypatch):
    for k, v in softhsm.items():
        monkeypatch.setenv(k, v)
    return softhsm
