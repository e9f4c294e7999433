"""At rest: with a data key, staff and conversation ids never appear in SQLite rows (context
keys, rate-limit buckets), and the names survive a key rotation."""

from __future__ import annotations

import asyncio
import os
import sqlite3

from dingskill.runtime.ratelimit import RateLimiter
from dingskill.runtime.stores import SqliteStore
from dingskill.security.crypto import Keyring
from dingskill.skills.conversation import Message


def test_ids_are_keyed_by_hmac_in_sqlite(tmp_path):
    ring = Keyring({"k1": os.urandom(32)}, "k1")
    path = tmp_path / "rt.db"

    async def go():
        store = SqliteStore(path, keyring=ring)
        await store.connect()
        try:
            await store.set_context("cid-SECRETCONV:staff-007", {"flow": "请假 3 天"})
            limiter = RateLimiter(store, 30, 60, 2000)
            msg = Message(text="hi", sender_id="staff-007", conversation_id="cid-SECRETCONV")
            assert await limiter.check(msg) is None
            assert (await store.get_context("cid-SECRETCONV:staff-007"))["flow"] == "请假 3 天"
            new = ring.rotated("k2")
            await store.reencrypt(new)
            store.keyring = new
            assert (await store.get_context("cid-SECRETCONV:staff-007"))["flow"] == "请假 3 天"
        finally:
            await store.close()

    asyncio.run(go())
    raw = path.read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("rt.db-")
    )
    with sqlite3.connect(path) as db:
        names = [r[0] for r in db.execute("SELECT k FROM kv")] + [
            r[0] for r in db.execute("SELECT k FROM buckets")
        ]
    assert any(n.startswith("ctx:h:") for n in names), names
    for secret in (b"staff-007", b"SECRETCONV", "请假".encode()):
        assert secret not in raw
    assert not any("staff-007" in n or "SECRETCONV" in n for n in names)
