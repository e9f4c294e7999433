"""Latency of one message's store operations when two processes share the SQLite file, as
``dingskill run --processes 2`` does.

    PYTHONPATH=sdk python bench/store_contention.py [--rate 300] [--messages 3000] [--json]

Two processes, each a :class:`~dingskill.runtime.stores.SqliteStore` on the same temp file,
each send ``--messages`` messages at ``--rate`` per second (paced, not a burst) through the
Pipeline's store calls: claim, begin turn (lease + context read), end turn (context write +
lease back), replying mark, finish mark, on 200 conversations of their own. Reports per
process the latency of those five calls together (ms: p50, p99, max), how many operations
went to the store's thread because the other process held the write lock (``inline`` counts
the rest) and how many groups the thread ran again after waiting for it (``busy_waits``).
The last line is one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


async def _one_process(path: str, rate: float, n: int, tag: str) -> dict:
    from dingskill.runtime.stores import SqliteStore

    store = SqliteStore(Path(path))
    await store.connect()
    lat: list[float] = []

    async def message(i: int) -> None:
        t = time.perf_counter()
        conv = f"conv-{tag}-{i % 200}"
        await store.claim(f"{tag}-{i}", 120)
        context = await store.begin_turn(conv, tag, 15.0) or {}
        context["n"] = context.get("n", 0) + 1
        await store.end_turn(conv, tag, context)
        await store.replying(f"{tag}-{i}", 60)
        await store.finish(f"{tag}-{i}", 60)
        lat.append((time.perf_counter() - t) * 1000)

    start, tasks = time.perf_counter(), []
    for i in range(n):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(message(i)))
    await asyncio.gather(*tasks)
    lat.sort()
    worker = store._worker
    out = {
        "p50_ms": round(lat[len(lat) // 2], 3),
        "p99_ms": round(lat[int(len(lat) * 0.99)], 3),
        "max_ms": round(lat[-1], 3),
        "inline": worker.inline_ops,
        "busy_waits": getattr(worker, "busy_waits", None),
    }
    await store.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=300.0)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("PATH", "TAG"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        path, tag = args.child
        print(json.dumps(asyncio.run(_one_process(path, args.rate, args.messages, tag))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "rt.db")
        cmd = [sys.executable, __file__, "--rate", str(args.rate), "--messages", str(args.messages)]
        procs = [
            subprocess.Popen([*cmd, "--child", db, tag], stdout=subprocess.PIPE, text=True)
            for tag in ("a", "b")
        ]
        try:
            outs = [p.communicate(timeout=600)[0] for p in procs]
        finally:
            for p in procs:
                p.kill()
        results = [json.loads(out.strip().splitlines()[-1]) for out in outs]
    for tag, r in zip("ab", results, strict=True):
        print(f"process {tag}: " + ", ".join(f"{k} {v}" for k, v in r.items()))
    if args.json:
        print(json.dumps({"rate": args.rate, "messages": args.messages, "processes": results}))


if __name__ == "__main__":
    main()
