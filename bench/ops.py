"""Costs of the operations features, one JSON object on the last line.

- ``route_us``: choosing a sender's skill versions (VisibilityRouter.engine_for) per message,
  with a 10 % staged release on one skill of three, over 20,000 distinct senders (engines cached
  per selection);
- ``sign_file_ms`` / ``sign_hsm_ms``: one ed25519 signature of a 4 KiB RECORD with a PEM key
  and inside a SoftHSM2 token (a fresh token in a temp folder; skipped without SoftHSM2).

    PYTHONPATH=sdk python bench/ops.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace


def _route_us(n: int = 20_000) -> float:
    from dingskill.runtime.visibility import VisibilityRouter
    from dingskill.skills import Engine
    from dingskill.skills.release import Audience, ReleasePlan, Visibility

    def fake(sid: str, ver: str):
        return SimpleNamespace(manifest=SimpleNamespace(id=sid, version=ver))

    stable = [fake(f"com.example.s{i}", "1.0.0") for i in range(3)]
    plan = ReleasePlan(
        "com.example.s0", "1.0.0", rules={"1.1.0": Visibility(Audience.PERCENT, percent=10)}
    )
    versions = {
        ("com.example.s0", "1.0.0"): stable[0],
        ("com.example.s0", "1.1.0"): fake("com.example.s0", "1.1.0"),
    }
    router = VisibilityRouter([plan], versions)
    default = Engine(stable)
    t0 = time.perf_counter()
    for i in range(n):
        router.engine_for(default, f"staff-{i}", f"cid-{i % 50}")
    return (time.perf_counter() - t0) / n * 1e6


def _sign_ms(repeat: int = 200) -> tuple[float, float | None]:
    from dingskill.security.hsm import default_module
    from dingskill.skills.packaging import generate_keys
    from dingskill.skills.packaging.signing import generate_token_key, load_signer

    record = os.urandom(4096)
    tmp = Path(tempfile.mkdtemp())
    key, _, _ = generate_keys(tmp, "bench")
    signer = load_signer(str(key))
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        signer.sign(record)
        t.append(time.perf_counter() - t0)
    file_ms = statistics.median(t) * 1000
    util, module = shutil.which("softhsm2-util"), default_module()
    if not util or not module:
        return file_ms, None
    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\n")
    os.environ.update(
        SOFTHSM2_CONF=str(conf),
        DINGSKILL_HSM_MODULE=module,
        DINGSKILL_HSM_TOKEN="bench",
        DINGSKILL_HSM_PIN="1234",
    )
    subprocess.run(
        [util, "--init-token", "--free", "--label", "bench", "--pin", "1234", "--so-pin", "5678"],
        check=True,
        capture_output=True,
    )
    generate_token_key("sign", tmp)
    hsm = load_signer("pkcs11:sign")
    t = []
    for _ in range(repeat // 4):
        t0 = time.perf_counter()
        hsm.sign(record)  # opens a session, logs in, signs, closes: as export does
        t.append(time.perf_counter() - t0)
    return file_ms, statistics.median(t) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    file_ms, hsm_ms = _sign_ms()
    out = {
        "route_us": round(_route_us(), 2),
        "sign_file_ms": round(file_ms, 3),
        "sign_hsm_ms": None if hsm_ms is None else round(hsm_ms, 3),
    }
    if not args.json:
        for k, v in out.items():
            print(f"{k:>14}: {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
