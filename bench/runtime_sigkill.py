"""What a SIGKILL of one `dingskill run` process loses, measured.

The emulator pushes robot messages once (the platform's documented behaviour) at a steady
rate to one runtime; after a while the runtime is killed with SIGKILL (no shutdown code runs).
Counted per run: messages pushed to the process, answered, and pushed but never answered
(lost: they reached a process that died before replying, and the platform does not push them
again). A restart then shows nothing already answered is answered again.

    PYTHONPATH=sdk python bench/runtime_sigkill.py --json [--rate 100] [--kill-after 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP = ("dingkillapp", "kill-app-secret")


def one_run(rate: float, kill_after: float, work: Path) -> dict:
    from dingskill.emulator import Emulator
    from dingskill.skills import Skill
    from dingskill.skills.packaging import SkillHome

    home = SkillHome(work / "home")
    home.install(Skill.load(ROOT / "skills" / "hr-assistant").export(work / "dist"))
    emu = Emulator({APP[0]: APP[1]})
    url = emu.start()
    cfg = {
        "server": {"port": 0},
        "storage": {"type": "sqlite", "path": str(work / "runtime.db")},
        "channels": {"enterprise_chat": {"mode": "stream", "endpoint": url}},
        "skills": {"home": str(work / "home")},
        "limits": {"user_per_minute": 0, "conversation_per_minute": 0, "global_per_second": 0},
        "audit": {"path": str(work / "audit" / "messages.jsonl")},
        "logging": {"level": "WARNING"},
    }
    (work / "rt.json").write_text(json.dumps(cfg))
    env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
    cmd = [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(work / "rt.json")]

    def start():
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    proc = start()
    try:
        emu.wait_connections(1, timeout=120)
        ids, t0 = [], time.perf_counter()
        while time.perf_counter() - t0 < kill_after:
            ids.append(emu.send("我想看工资条", sender_id=f"u-{len(ids) % 50}"))
            time.sleep(max(0.0, t0 + len(ids) / rate - time.perf_counter()))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        time.sleep(1.0)
        pushed = [m for m in ids if emu.messages[m].attempts]
        answered = [m for m in ids if emu.messages[m].replies]
        proc = start()  # the restart: nothing is pushed again, nothing answered twice
        emu.wait_connections(1, timeout=120)
        time.sleep(3.0)
        return {
            "pushed": len(pushed),
            "answered": len(answered),
            "lost": len(pushed) - len(answered),
            "duplicated": sum(1 for m in ids if len(emu.messages[m].replies) > 1),
        }
    finally:
        proc.kill()
        proc.wait(10)
        emu.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=100.0, help="messages per second offered")
    ap.add_argument("--kill-after", type=float, default=5.0, help="seconds before the SIGKILL")
    ap.add_argument("--runs", type=int, default=3, help="repetitions")
    ap.add_argument("--json", action="store_true", help="print one JSON object last")
    args = ap.parse_args()
    runs = []
    for _ in range(args.runs):
        work = Path(tempfile.mkdtemp(prefix="dingskill-kill-"))
        try:
            runs.append(one_run(args.rate, args.kill_after, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(runs[-1], file=sys.stderr)
    out = {
        "rate": args.rate,
        "kill_after_s": args.kill_after,
        "runs": runs,
        "lost_max": max(r["lost"] for r in runs),
        "duplicated_max": max(r["duplicated"] for r in runs),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
