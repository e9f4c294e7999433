"""CPU the SQLite store spends per chat message, one JSON object on the last line.

Drives a :class:`~dingskill.runtime.stores.SqliteStore` on a temp file through one message's
worth of store calls, as the Pipeline and the dedup code make them: claim, (turn lease),
get context, set context, (lease back), replying mark, finish mark. ``--messages`` messages,
``--concurrency`` at a time on one loop, each on its own conversation (so turn leases never
wait), for ``--reps`` repetitions on fresh files. CPU is ``time.process_time`` (the loop plus
the store's threads), in ms per message: median, min and max over the repetitions, without
and with ``shared_turns`` (the turn lease). With the store's combined calls
(``begin_turn``/``end_turn``, when present) the lease rides with the context read and write,
as in the Pipeline.

    PYTHONPATH=sdk python bench/store_ops.py [--messages 4000] [--concurrency 100] [--reps 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

COMBINED = True  # --separate: the lease and the context as four calls (the old Pipeline)


async def _one(store, i: int, conv: str, shared: bool) -> None:
    msg = f"msg-{i}"
    await store.claim(msg, 120)
    if shared and COMBINED and hasattr(store, "begin_turn"):
        context = await store.begin_turn(conv, "owner", 15.0)
        assert context is not None
        context["turns"] = context.get("turns", 0) + 1
        await asyncio.sleep(0)  # the engine
        await store.end_turn(conv, "owner", context)
    else:
        if shared:
            assert await store.acquire_turn(conv, "owner", 15.0)
        context = await store.get_context(conv)
        context["turns"] = context.get("turns", 0) + 1
        await asyncio.sleep(0)  # the engine
        await store.set_context(conv, context)
        if shared:
            await store.release_turn(conv, "owner")
    await store.replying(msg, 86400)
    await store.finish(msg, 86400)


async def _run(path: Path, messages: int, concurrency: int, shared: bool, keyring) -> float:
    from dingskill.runtime.stores import SqliteStore

    store = SqliteStore(path, keyring=keyring)
    await store.connect()
    try:
        # warm up: the id key, the connections, the statement caches
        await asyncio.gather(*(_one(store, -j - 1, f"c{j}", shared) for j in range(concurrency)))
        queue = iter(range(messages))

        async def lane(j: int) -> None:
            for i in queue:
                await _one(store, i, f"c{j}", shared)

        t0 = time.process_time()
        await asyncio.gather(*(lane(j) for j in range(concurrency)))
        return (time.process_time() - t0) * 1000 / messages
    finally:
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--keyring", action="store_true", help="sealed contexts and hashed ids")
    ap.add_argument("--separate", action="store_true", help="no begin_turn/end_turn")
    args = ap.parse_args()
    global COMBINED
    COMBINED = not args.separate
    keyring = None
    if args.keyring:
        import os

        from dingskill.security.crypto import Keyring

        keyring = Keyring({"k1": os.urandom(32)}, "k1")
    out = {
        "messages": args.messages,
        "concurrency": args.concurrency,
        "keyring": args.keyring,
        "combined_turn_calls": COMBINED,
    }
    with tempfile.TemporaryDirectory() as tmp:
        for shared in (False, True):
            runs = []
            for r in range(args.reps):
                path = Path(tmp) / f"s{int(shared)}-{r}.db"
                runs.append(
                    asyncio.run(_run(path, args.messages, args.concurrency, shared, keyring))
                )
            name = "shared_turns" if shared else "plain"
            out[name] = {
                "cpu_ms_per_msg": round(statistics.median(runs), 4),
                "min": round(min(runs), 4),
                "max": round(max(runs), 4),
            }
            print(name, [round(x, 4) for x in runs], flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
