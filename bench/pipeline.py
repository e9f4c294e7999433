"""CPU cost of the runtime's one Pipeline per message, in process (no network, no SDK).

    python bench/pipeline.py [--messages 3000] [--distinct | --traffic repeat|distinct|mixed]
                             [--window 32] [--no-batching] [--store memory|sqlite] [--json]

The three example skills, an in-memory store, messages from 200 senders through
``Pipeline.process`` on one event loop (as ``dingskill run`` does, minus the transport),
``--window`` of them in flight at once (a runtime under load has many; 1: one at a time).
The Pipeline batches sentence encodings of concurrent messages in classification threads as
``dingskill run`` does (``--no-batching``: the engine encodes each message itself, on the
loop). Texts (see ``dingskill.runtime.traffic``): ``repeat`` cycles the held-out test
utterances of ``office-zh`` and ``smalltalk-en`` (nearly every decision is a cache hit);
``--distinct`` (``--traffic distinct``) never sends an utterance twice (CLINC150 and CAIS from
``../shared/datasets`` when present, else generated sentences); ``mixed`` is the Zipf-like
draw with >= 80 % new utterances. ``--store sqlite``: the runtime's default store (a SQLite
file in a temporary folder) with what a worker of ``dingskill run --processes 2`` does with it
on every message: message-id dedup (claim, the "replying" mark, done), the conversation's turn
lease, a reply handed to a sink (that only counts it). CPU is the whole process's (every
thread), per message, after a warm-up of 300 messages (JSON with ``--json``); ``--window 1``
gives a lone message's cost, as at 200 msg/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--distinct", action="store_true", help="no utterance repeats")
    ap.add_argument("--traffic", choices=["repeat", "distinct", "mixed"], default=None)
    ap.add_argument("--window", type=int, default=32, help="messages in flight (default 32)")
    ap.add_argument("--no-batching", action="store_true", help="encode on the loop, one by one")
    ap.add_argument("--workers", type=int, default=0, help="classification threads (0: cores)")
    ap.add_argument(
        "--store", choices=["memory", "sqlite"], default="memory", help="see the docstring"
    )
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    traffic = args.traffic or ("distinct" if args.distinct else "repeat")

    from dingskill.runtime.local import LocalPipeline
    from dingskill.runtime.traffic import draw, new_share
    from dingskill.runtime.understanding import Understanding, UnderstandingConfig
    from dingskill.skills import Skill
    from dingskill.skills.conversation import Message
    from dingskill.skills.outbound_session import close_outbound_sessions

    skills = [Skill.load(ROOT / "skills" / n) for n in ("hr-assistant", "it-helpdesk", "faq-en")]
    for s in skills:
        s.model  # trained before timing  # noqa: B018
    pipeline = LocalPipeline(skills).pipeline
    sqlite = None
    if args.store == "sqlite":
        import tempfile

        from dingskill.runtime.stores import SqliteStore

        folder = tempfile.TemporaryDirectory(prefix="dingskill-bench-")  # gone at exit
        sqlite = SqliteStore(Path(folder.name) / "runtime.db")
        pipeline.use_store(sqlite)
        pipeline.shared_turns = True  # as every worker of `dingskill run --processes N`
    warm_n = 300
    texts = draw(traffic, warm_n + args.messages, ROOT)

    async def run(batch: list[str], offset: int) -> float:
        queue = list(enumerate(batch, offset))
        t0 = time.process_time()

        async def sink(reply) -> bool:
            return True

        async def lane() -> None:
            while queue:
                i, text = queue.pop(0)
                ids = {"sender_id": f"u{i % 200}", "conversation_id": f"c{i % 200}"}
                if sqlite is None:
                    await pipeline.process(Message(text=text, **ids))
                else:
                    await pipeline.process(Message(text=text, msg_id=f"m{i}", **ids), sink)

        await asyncio.gather(*(lane() for _ in range(max(1, args.window))))
        return (time.process_time() - t0) / len(batch) * 1000

    async def both() -> dict:
        understanding = None
        if not args.no_batching:
            understanding = Understanding(UnderstandingConfig(workers=args.workers))
            pipeline.understanding = understanding
        await run(texts[:warm_n], 0)  # warm-up: token rows, first batches
        ms = await run(texts[warm_n:], warm_n)
        stats = None
        if understanding is not None:
            b = understanding.stats
            stats = round(b.mean_batch, 2) if b is not None else None
            await understanding.close()
        await close_outbound_sessions()  # the it-helpdesk skill's HTTP action opened one
        if sqlite is not None:
            await sqlite.close()
            folder.cleanup()
        return {
            "cpu_ms_per_message": round(ms, 3),
            "messages": args.messages,
            "traffic": traffic,
            "distinct": traffic == "distinct",
            "new_share": round(new_share(texts), 4),
            "window": args.window,
            "batching": not args.no_batching,
            "store": args.store,
            "mean_batch": stats,
            "cores": len(os.sched_getaffinity(0)),
            "load_average": round(os.getloadavg()[0], 2),
        }

    result = asyncio.run(both())
    print(json.dumps(result) if args.json else f"{result['cpu_ms_per_message']} ms CPU per message")


if __name__ == "__main__":
    main()
