"""CPU cost of auditing one chat message, one JSON object on the last line.

Records like the ones the Pipeline writes per handled message go through
:class:`dingskill.runtime.audit.AuditLog`: ``record`` (redaction, baseline, queueing: the event
loop's share) then ``flush`` in batches (``AuditChain.append_many`` in a thread: canonical JSON,
MAC, write, fsync, head), as the background writer does. CPU time is ``time.process_time``
(every thread of the process, user + system), per message, over ``--messages`` messages,
``--reps`` times on a fresh chain each; the median and the spread (min, max) are printed, for a
plain chain and for one sealed with a data keyring.

    PYTHONPATH=sdk python bench/audit_append.py --messages 4000 --batch 22 --reps 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def _message_fields(i: int) -> dict:
    return dict(
        client_ip="",
        intent="weather.query" if i % 3 else "oos",
        msg_id=f"msg-{i:08d}-abcdef0123456789",
        channel="stream",
        conversation=f"cid{i % 50:04d}XyZ==",
        source="model" if i % 3 else "fallback",
        confidence=round(0.5 + (i % 50) / 100, 4),
        latency_ms=round(1.0 + (i % 97) / 10, 2),
        error=None,
    )


async def _run(messages: int, batch: int, keyring, baseline: bool) -> dict:
    from dingskill.runtime.audit import AuditLog
    from dingskill.security.redact import Redactor

    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog(
            str(Path(tmp) / "audit.jsonl"),
            keyring=keyring,
            redactor=Redactor(["app-secret-0123456789abcdef"]),
        )
        if baseline:
            from dingskill.security.baseline import BaselineConfig, BehaviourBaseline

            audit.baseline = BehaviourBaseline(BaselineConfig())
        fields = [_message_fields(i) for i in range(messages)]
        await audit.flush()
        audit.record("warmup", "-", "message", "ok", **fields[0])
        await audit.flush()
        loop_s = writer_s = 0.0
        for start in range(0, messages, batch):
            t0 = time.process_time()
            for i in range(start, min(messages, start + batch)):
                audit.record(f"user{i % 200:05d}", "weather", "message", "ok", **fields[i])
            t1 = time.process_time()
            await audit.flush()
            t2 = time.process_time()
            loop_s += t1 - t0
            writer_s += t2 - t1
        assert audit.chain.verify() == []
        return {
            "loop_us": loop_s / messages * 1e6,
            "writer_us": writer_s / messages * 1e6,
            "total_us": (loop_s + writer_s) / messages * 1e6,
        }


def _summary(runs: list[dict]) -> dict:
    out = {}
    for k in runs[0]:
        vals = [r[k] for r in runs]
        out[k] = {
            "median": round(statistics.median(vals), 2),
            "min": round(min(vals), 2),
            "max": round(max(vals), 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=4000)
    ap.add_argument("--batch", type=int, default=22, help="records per flush (writer batch)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--baseline", action="store_true", help="with the behaviour baseline on")
    ap.add_argument("--json", action="store_true", help="(accepted; JSON is always printed)")
    args = ap.parse_args()
    from dingskill.security.crypto import Keyring

    result = {"messages": args.messages, "batch": args.batch, "reps": args.reps}
    for name, ring in (("plain", None), ("sealed", Keyring({"k1": os.urandom(32)}, "k1"))):
        runs = [
            asyncio.run(_run(args.messages, args.batch, ring, args.baseline))
            for _ in range(args.reps)
        ]
        result[name] = _summary(runs)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
