"""What rendering templates in bounded worker processes costs per render.

Renders a typical reply template N times in this process's sandbox (no limits) and through
the worker pool (memory, time and output limits), and prints one JSON object on its last line:
``{"renders", "inprocess_p50_ms", "worker_p50_ms", "worker_p99_ms", "worker_extra_p50_ms"}``.

Command (from the project root): ``PYTHONPATH=sdk python bench/templates.py --json``
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from dingskill.skills import _sandbox
from dingskill.skills.templates import render

SOURCE = "已为{{ sender }}提交{{ slots.leave_type }}申请：{{ slots.start_date }} 起，共 {{ slots.days }} 天。"
VARS = {
    "sender": "小周",
    "slots": {"leave_type": "年假", "start_date": "2026-12-01", "days": 3},
    "message": {"text": "我想请三天年假", "sender_id": "staff-21"},
}


def _times(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    render(SOURCE, VARS)  # start the workers
    inproc = _times(lambda: _sandbox.render_one(SOURCE, VARS, "text", [20_000]), args.n)
    worker = _times(lambda: render(SOURCE, VARS), args.n)
    p50 = statistics.median
    result = {
        "renders": args.n,
        "inprocess_p50_ms": round(p50(inproc), 4),
        "worker_p50_ms": round(p50(worker), 4),
        "worker_p99_ms": round(worker[int(len(worker) * 0.99) - 1], 4),
        "worker_extra_p50_ms": round(p50(worker) - p50(inproc), 4),
    }
    print(json.dumps(result) if args.json else result)


if __name__ == "__main__":
    main()
