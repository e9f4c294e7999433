"""Start-up time of the command line and of the runtime.

    python bench/startup.py --json

1. ``dingskill --help``: wall time of the console script (median of ``--repeat`` runs).
2. ``dingskill run``: wall time from spawning the process to ``/readyz`` answering 200, with
   the three example skills installed (exported once, before timing) and the Stream channel
   connected to the local emulator (SQLite storage: the embedded default).

Prints one line per measurement to stderr and, with ``--json``, one JSON object on the last
line of stdout. The figures depend on the machine's load: ``uptime`` is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ("hr-assistant", "faq-en", "it-helpdesk")
APP = ("benchapp", "bench-app-secret")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("dingskill")
    return [str(script)] if script.exists() else [shutil.which("dingskill") or "dingskill"]


def time_help(repeat: int) -> list[float]:
    """Seconds per ``dingskill --help``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([*_cli(), "--help"], check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return times


def _install_examples(home: Path, dist: Path) -> None:
    from dingskill.skills import Skill
    from dingskill.skills.packaging import SkillHome

    skill_home = SkillHome(home)
    for name in EXAMPLES:
        skill = Skill.load(ROOT / "skills" / name)
        # the example helpdesk's API lives on 127.0.0.1 in the tests: approve what it declares
        hosts = list(skill.manifest.raw.get("outbound") or []) or None
        skill_home.install(skill.export(dist), trust=True, allow_hosts=hosts)


def time_ready(repeat: int, work: Path) -> list[float]:
    """Seconds from spawning ``dingskill run`` to ``/readyz`` 200, example skills installed."""
    import httpx
    from dingskill.emulator import Emulator

    _install_examples(work / "home", work / "dist")
    env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
    times = []
    with Emulator({APP[0]: APP[1]}) as emu:
        for i in range(repeat):
            port = _free_port()
            cfg = work / f"run{i}.json"
            cfg.write_text(
                json.dumps(
                    {
                        "server": {"port": port},
                        "storage": {"type": "sqlite", "path": str(work / f"run{i}.db")},
                        "channels": {"enterprise_chat": {"mode": "stream", "endpoint": emu.url}},
                        "skills": {"home": str(work / "home")},
                        "audit": {"path": str(work / f"audit{i}.jsonl")},
                    }
                )
            )
            log = (work / f"run{i}.log").open("w")
            start = time.perf_counter()
            proc = subprocess.Popen(
                [*_cli(), "run", "--config", str(cfg)], env=env, stdout=log, stderr=log
            )
            try:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError((work / f"run{i}.log").read_text()[-2000:])
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).is_success:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.perf_counter() - start > 120:
                        raise TimeoutError("not ready within 120 s")
                    time.sleep(0.01)
                times.append(time.perf_counter() - start)
            finally:
                proc.terminate()
                proc.wait(30)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement (median)")
    parser.add_argument("--json", action="store_true", help="one JSON object on the last line")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", file=sys.stderr)
    help_s = time_help(args.repeat)
    print(f"dingskill --help: {[round(t, 3) for t in help_s]} s", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="dingskill-startup-") as tmp:
        ready_s = time_ready(args.repeat, Path(tmp))
    print(f"dingskill run -> /readyz 200: {[round(t, 3) for t in ready_s]} s", file=sys.stderr)
    result = {
        "help_median_s": round(statistics.median(help_s), 3),
        "ready_median_s": round(statistics.median(ready_s), 3),
        "ready_max_s": round(max(ready_s), 3),
        "load_average_1m": round(load[0], 2),
        "cores": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
