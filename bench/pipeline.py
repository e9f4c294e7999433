"""CPU cost of the runtime's one Pipeline per message, in process (no network, no SDK).

    python bench/pipeline.py [--messages 3000] [--distinct]

The three example skills, an in-memory store, the held-out test utterances of ``office-zh``
and ``smalltalk-en`` from 200 senders, each message through ``Pipeline.process`` on one
event loop (as ``dingskill run`` does, minus the transport). ``--distinct`` makes every
utterance new (a counter appended), so no decision comes from the classifier's cache.
Prints milliseconds per message after a warm-up pass (JSON with ``--json``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--distinct", action="store_true", help="no utterance repeats")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from dingskill.runtime.local import LocalPipeline
    from dingskill.skills import Skill
    from dingskill.skills.conversation import Message
    from dingskill.skills.outbound_session import close_outbound_sessions

    skills = [Skill.load(ROOT / "skills" / n) for n in ("hr-assistant", "it-helpdesk", "faq-en")]
    pipeline = LocalPipeline(skills).pipeline
    texts: list[str] = []
    for name in ("office-zh", "smalltalk-en"):
        with open(ROOT / "datasets" / name / "test.csv", encoding="utf-8") as fh:
            texts += [row["text"] for row in csv.DictReader(fh)]

    async def run(n: int, offset: int) -> float:
        t0 = time.process_time()
        for i in range(offset, offset + n):
            text = texts[i % len(texts)] + (f" {i}" if args.distinct else "")
            await pipeline.process(
                Message(text=text, sender_id=f"u{i % 200}", conversation_id=f"c{i % 200}")
            )
        return (time.process_time() - t0) / n * 1000

    async def both() -> dict:
        await run(len(texts), 0)  # warm-up: every utterance once
        ms = await run(args.messages, len(texts))
        await close_outbound_sessions()  # the it-helpdesk skill's HTTP action opened one
        return {
            "cpu_ms_per_message": round(ms, 3),
            "messages": args.messages,
            "distinct": args.distinct,
            "utterances": len(texts),
        }

    result = asyncio.run(both())
    print(json.dumps(result) if args.json else f"{result['cpu_ms_per_message']} ms CPU per message")


if __name__ == "__main__":
    main()
