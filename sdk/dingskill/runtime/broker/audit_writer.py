"""``dingskill audit-writer``: the single writer of the message audit chain. Workers publish
their records to ``Q.audit`` (a single-active-consumer queue: a second writer stands by);
this service appends them in arrival order to the hash-chained, encrypted-at-rest file
(``audit.path``) and acks a batch only after it is on disk, so ``dingskill audit verify``
reads one linear chain."""

from __future__ import annotations

import asyncio
import json
import logging
import time

from ...security.audit_chain import AuditChain
from ...security.crypto import Keyring
from ..metrics import Metrics
from ..server import make_server
from .amqp import Topology, connect
from .metrics import BrokerMetrics
from .service import run_until_signal, service_app

__all__ = ["AuditWriter"]

log = logging.getLogger("dingskill.audit_writer")


class AuditWriter:
    def __init__(self, config, keyring: Keyring | None = None) -> None:
        self.config = config
        enc = config.get("security.encrypt")
        self.keyring = (
            keyring if keyring is not None else (Keyring.from_env() if enc is not False else None)
        )
        self.chain = AuditChain(
            config.get("audit.path"),
            keyring=self.keyring,
            retention_days=config.get("audit.retention_days"),
        )
        self.metrics = Metrics()
        self.bm = BrokerMetrics(self.metrics.registry)
        self.broker = config["broker"]
        self.topology = Topology.from_config(self.broker)
        self.connection = None
        self._pending: list = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self.written = 0

    async def start(self) -> None:
        await asyncio.to_thread(self.chain.enforce_retention)
        self.connection = await connect(self.broker, "dingskill-audit-writer")
        ch = await self.connection.channel()
        await self.topology.declare(ch)
        await ch.set_qos(prefetch_count=500)
        q = await ch.declare_queue(self.topology.audit_queue, passive=True)  # restored on reconnect
        self._channel = ch
        await q.consume(self._on_message)
        self.server = make_server(service_app(self.metrics, self.readiness), self.config)
        self._tasks.append(asyncio.create_task(self.server.serve()))
        self._tasks.append(asyncio.create_task(self._writer()))
        while not self.server.started:
            if self._tasks[0].done():
                self._tasks[0].result()
            await asyncio.sleep(0.01)
        log.info("audit-writer started", extra={"path": str(self.chain.path)})

    async def _on_message(self, msg) -> None:
        self.bm.deliveries.inc()
        self._pending.append(msg)
        self._wake.set()

    async def _writer(self) -> None:
        last_retention = time.monotonic()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0.05)  # batch
            await self.flush()
            if time.monotonic() - last_retention > 3600:
                await asyncio.to_thread(self.chain.enforce_retention)
                last_retention = time.monotonic()

    async def flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        records: list[dict] = []
        for m in batch:
            try:
                body = json.loads(m.body)
                records += body if isinstance(body, list) else [body]
            except ValueError:
                log.error("audit message is not JSON; dropped", extra={"bytes": len(m.body)})
        await asyncio.to_thread(self.chain.append_many, records)
        self.written += len(records)
        # on disk: now the broker may forget them. The batch holds the channel's unacked
        # deliveries in order (earlier batches are acked), so one multiple ack of the last
        # covers it; after a reconnection the old channel's ones cannot be acked any more
        # (the broker gives them back)
        try:
            await batch[-1].ack(multiple=len(batch) > 1)
        except Exception as exc:  # noqa: BLE001 - the channel closed: they come back
            log.warning("audit batch not acked", extra={"n": len(batch), "error": repr(exc)})

    async def readiness(self) -> dict:
        return {"broker": self.connection is not None and not self.connection.is_closed}

    async def stop(self) -> None:
        for t in self._tasks[1:]:
            t.cancel()
        await asyncio.gather(*self._tasks[1:], return_exceptions=True)
        try:
            await self.flush()
        finally:
            self.server.should_exit = True
            await asyncio.gather(self._tasks[0], return_exceptions=True)
            if self.connection is not None:
                await self.connection.close()

    async def run(self) -> None:
        await run_until_signal(self.start, self.stop)
