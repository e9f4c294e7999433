"""The audit writer batches more records per flush at high rates only."""

from __future__ import annotations

import asyncio

import pytest
from dingskill.runtime.audit import AuditLog
from dingskill.security.audit_chain import verify_chain


def test_writer_waits_longer_only_at_high_rates():
    base, top = AuditLog.BATCH_WAIT_S, AuditLog.BATCH_WAIT_MAX_S
    assert AuditLog._batch_wait(0, 0.0) == base
    assert AuditLog._batch_wait(1, 30.0) == base  # one record after a quiet spell
    assert AuditLog._batch_wait(10, 0.05) == base  # 200 a second
    assert AuditLog._batch_wait(20, 0.05) == pytest.approx(2 * base)  # 400 a second
    assert AuditLog._batch_wait(500, 0.05) == top


def test_writer_flushes_a_lone_record_after_the_short_wait_and_a_burst_in_few_batches(tmp_path):
    audit = AuditLog(str(tmp_path / "audit" / "messages.jsonl"))
    sizes = []
    append_many = audit.chain.append_many
    audit.chain.append_many = lambda recs: sizes.append(len(recs)) or append_many(recs)

    async def main():
        await audit.start()
        audit.record("u", "-", "message", "ok")
        await asyncio.sleep(0.15)
        assert audit.written == 1  # written after the 50 ms wait
        for _ in range(60):  # ~3000 a second for 0.6 s
            for _ in range(30):
                audit.record("u", "-", "message", "ok")
            await asyncio.sleep(0.01)
        await audit.stop()

    asyncio.run(main())
    assert sum(sizes) == 1 + 1800 and audit.written == 1801
    assert len(sizes) <= 1 + 7  # 0.6 s of records in batches of up to 0.2 s, not every 50 ms
    assert verify_chain(audit.chain.path) == []
