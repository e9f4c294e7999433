"""A process of the turn-lease tests (tests/runtime/test_turn_lease.py), on a store shared with
others: ``count`` runs turns of one conversation that each add 1 to a counter in its context;
``hold`` takes the conversation's turn lease and never gives it back (until killed).

    python turn_worker.py count STORE SHARED TURNS READY GO CONVERSATION
    python turn_worker.py hold STORE TTL_S READY CONVERSATION

STORE: ``redis://...`` or a SQLite file. ``count`` prints the counter values its turns saw
(JSON) once done."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from dingskill.runtime.pipeline import Pipeline
from dingskill.runtime.stores import RedisStore, SqliteStore
from dingskill.skills.conversation import Message, Reply

NO_LIMITS = {"user_per_minute": 0, "conversation_per_minute": 0, "global_per_second": 0}


class CountingEngine:
    """Reads the counter, lets the loop (and the other processes) run, writes it plus one."""

    async def handle(self, message: Message, context: dict) -> Reply:
        n = context.get("n", 0)
        await asyncio.sleep(0.002)
        context["n"] = n + 1
        return Reply(text=str(n + 1), source="skill")


def open_store(spec: str):
    return RedisStore(spec) if spec.startswith("redis://") else SqliteStore(spec)


async def count(spec: str, shared: bool, turns: int, ready: Path, go: Path, conv: str) -> None:
    store = open_store(spec)
    await store.connect()
    engine = CountingEngine()
    pipeline = Pipeline(lambda: engine, store, limits=NO_LIMITS, shared_turns=shared)
    ready.write_text("ready")
    deadline = time.monotonic() + 120
    while not go.exists():  # start together with the others
        if time.monotonic() > deadline:
            raise SystemExit("no go signal")
        await asyncio.sleep(0.005)
    tag = f"{ready.name}-{time.time_ns()}"
    messages = [
        Message(text="add one", conversation_id=conv, msg_id=f"{tag}-{i}") for i in range(turns)
    ]
    replies = await asyncio.gather(*(pipeline.process(m) for m in messages))
    await store.close()
    print(json.dumps([int(r.text) for r in replies]), flush=True)


async def hold(spec: str, ttl_s: float, ready: Path, conv: str) -> None:
    store = open_store(spec)
    await store.connect()
    if not await store.acquire_turn(conv, "holder-that-dies", ttl_s):
        raise SystemExit("lease not obtained")
    ready.write_text("held")
    await asyncio.sleep(3600)  # killed by the test


def main(argv: list[str]) -> None:
    if argv[0] == "count":
        spec, shared, turns, ready, go, conv = argv[1:]
        asyncio.run(count(spec, shared == "1", int(turns), Path(ready), Path(go), conv))
    else:
        spec, ttl_s, ready, conv = argv[1:]
        asyncio.run(hold(spec, float(ttl_s), Path(ready), conv))


if __name__ == "__main__":
    main(sys.argv[1:])
