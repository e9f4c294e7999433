"""The runtime's audit trail: one record per handled message and per admin action.

Records go to a hash-chained JSON Lines file (``audit.path``; sealed when a data key is
configured) and/or the storage backend (``audit.store``), written by a background task in
batches so the message path never waits on a disk flush; :meth:`flush` drains the queue
(on shutdown too). Retention is enforced at start and every hour."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ..security.audit_chain import AuditChain
from ..security.crypto import Keyring
from ..security.redact import Redactor

__all__ = ["AuditLog"]


def _link_copy(rec: dict, name: str, entry: dict) -> None:
    """Give the store's copy of a record its place in the file chain (seq, prev, MAC), so the
    copy verifies too (:func:`dingskill.security.audit_chain.verify_copy`)."""
    rec.update(chain=name, seq=entry["seq"], prev=entry["prev"], mac=entry["mac"], kid=entry["kid"])


class AuditLog:
    def __init__(
        self,
        path: str | None,
        store=None,
        keyring: Keyring | None = None,
        retention_days: float = 180,
        redactor: Redactor | None = None,
        alert_webhook: str | None = None,
    ) -> None:
        self.alert_webhook = alert_webhook
        self._denials: dict[str, list[float]] = {}
        self.alerts_sent = 0
        self.chain = (
            AuditChain(path, keyring=keyring, retention_days=retention_days) if path else None
        )
        self.admin_chain = (
            AuditChain(
                Path(path).with_name("admin.jsonl"), keyring=keyring, retention_days=retention_days
            )
            if path
            else None
        )
        self.store = store
        self.redactor = redactor or Redactor()
        self._queue: list[dict] = []
        self._admin_queue: list[dict] = []  # deferred admin records (see ``admin``)
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.written = 0
        # optional behaviour baseline (security.baseline.BehaviourBaseline) and a callback
        # for its alerts (metrics); set by the runtime
        self.baseline = None
        self.on_baseline_alert = None

    def record(
        self, actor: str, obj: str, operation: str, result: str, client_ip: str = "", **extra
    ) -> dict:
        """Queue one record (millisecond timestamp, actor, object, operation, result, client IP)."""
        rec = {
            "ts_ms": int(time.time() * 1000),
            "actor": actor,
            "object": obj,
            "operation": operation,
            "result": result,
            "client_ip": client_ip,
        }
        rec.update({k: v for k, v in extra.items() if v is not None})
        rec = self.redactor.data(rec)
        self._queue.append(rec)
        self._wake.set()
        if self.baseline is not None:
            self._observe(rec)
        return rec

    def _observe(self, rec: dict) -> None:
        """Feed the behaviour baseline; a departure becomes an admin record and an alert."""
        actor, op = str(rec.get("actor", "")), str(rec.get("operation", ""))
        if actor in ("", "system") or op == "baseline.alert":
            return
        kind = "admin" if rec.get("kind") == "admin" else "message" if op == "message" else None
        if kind is None:
            return
        alert = self.baseline.observe(actor, kind, rec["ts_ms"] / 1000)
        if alert is None:
            return
        import logging

        logging.getLogger("dingskill.security").warning(
            "behaviour baseline departure", extra={"action": "baseline.alert", **alert.to_dict()}
        )
        if self.on_baseline_alert is not None:
            self.on_baseline_alert(alert)
        # raised on the message path: written by the background writer, off the event loop
        # (a synchronous fsync per alert stalled every conversation for milliseconds)
        self.admin("system", actor, "baseline.alert", "alert", defer=True, **alert.to_dict())

    def admin(
        self,
        actor: str,
        obj: str,
        operation: str,
        result: str,
        client_ip: str = "",
        defer: bool = False,
        **extra,
    ) -> dict:
        """An admin action: written at once to ``admin.jsonl`` (and queued for the store).
        ``defer``: written by the background writer instead (with a running writer only)."""
        rec = self.record(actor, obj, operation, result, client_ip, kind="admin", **extra)
        if self.admin_chain is not None:
            if defer and self._task is not None and not self._task.done():
                self._admin_queue.append(rec)
            else:
                _link_copy(rec, "admin", self.admin_chain.append(rec))
        self._maybe_alert(rec)
        return rec

    SENSITIVE = (
        "access.grant",
        "access.role.set",
        "access.token.create",
        "access.revoke",
        "skills.install",
        "skills.rollback",
        "skills.remove",
    )

    def _maybe_alert(self, rec: dict) -> None:
        """Real-time alert for sensitive operations, signature failures and repeated refusals."""
        if not self.alert_webhook:
            return
        reason = None
        op, result = str(rec.get("operation", "")), str(rec.get("result", ""))
        if op in self.SENSITIVE:
            reason = f"sensitive operation {op}"
        if "signature" in str(rec.get("error", "")).lower() or "SIGNATURE" in str(
            rec.get("error", "")
        ):
            reason = "signature failure"
        if op == "baseline.alert":
            reason = (
                f"behaviour baseline: {rec.get('object')} made {rec.get('count')} "
                f"{rec.get('event_kind')} event(s) in one window "
                f"(threshold {rec.get('threshold')})"
            )
        if result == "denied":
            now = time.monotonic()
            hits = [t for t in self._denials.get(rec.get("actor", ""), []) if now - t < 60] + [now]
            self._denials[rec.get("actor", "")] = hits
            if len(hits) == 3:
                reason = f"repeated refusals: 3 within 60 s by {rec.get('actor')}"
        if reason is None:
            return
        body = {"alert": reason, "record": rec}
        try:
            asyncio.get_running_loop().create_task(self._post(body))
        except RuntimeError:  # no loop (a command-line call): send now
            self._post_sync(body)

    async def _post(self, body: dict) -> None:
        import aiohttp

        for attempt in range(3):
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
                    async with session.post(self.alert_webhook, json=body) as resp:
                        if resp.status < 500:
                            self.alerts_sent += 1
                            return
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.5 * 2**attempt)
        import logging

        logging.getLogger("dingskill.runtime").error(
            "alert webhook failed", extra={"alert": body["alert"]}
        )

    def _post_sync(self, body: dict) -> None:
        from .. import http_sync

        try:
            http_sync.post(self.alert_webhook, json=body, timeout=5)
            self.alerts_sent += 1
        except http_sync.HttpError:
            pass

    def admin_sink(self, rec: dict) -> None:
        """For :class:`~dingskill.security.rbac.AccessControl`: its records become admin records."""
        rec = dict(rec)
        self.admin(
            rec.pop("actor", "system"),
            rec.pop("object", ""),
            rec.pop("operation", ""),
            rec.pop("result", ""),
            rec.pop("client_ip", ""),
            **{k: v for k, v in rec.items() if k != "ts_ms"},
        )

    async def start(self) -> None:
        if self.chain is not None:
            self.chain.enforce_retention()
            self.admin_chain.enforce_retention()
        self._task = asyncio.create_task(self._run())

    # The writer waits BATCH_WAIT_S after the first queued record before it flushes; when
    # records come faster than BATCH_RATE a second, the wait grows with the rate up to
    # BATCH_WAIT_MAX_S, so every flush (file lock, two fsyncs, the head) carries more records
    # at high rates while a record at a low rate waits as long as ever.
    BATCH_WAIT_S = 0.05
    BATCH_WAIT_MAX_S = 0.2
    BATCH_RATE = 200.0

    @classmethod
    def _batch_wait(cls, records: int, elapsed_s: float) -> float:
        """The wait before the next flush, after ``records`` came in ``elapsed_s``."""
        rate = records / max(elapsed_s, 1e-3)
        return min(cls.BATCH_WAIT_MAX_S, max(1.0, rate / cls.BATCH_RATE) * cls.BATCH_WAIT_S)

    async def _run(self) -> None:
        last_retention = time.monotonic()
        wait, since = self.BATCH_WAIT_S, time.monotonic()
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(wait)  # batch
            now, records = time.monotonic(), len(self._queue) + len(self._admin_queue)
            await self.flush()
            wait, since = self._batch_wait(records, now - since), now
            if time.monotonic() - last_retention > 3600 and self.chain is not None:
                self.chain.enforce_retention()
                self.admin_chain.enforce_retention()
                last_retention = time.monotonic()

    async def flush(self) -> None:
        deferred, self._admin_queue = self._admin_queue, []
        batch, self._queue = self._queue, []
        if deferred:  # before the store copies below, which carry their place in the chain
            entries = await asyncio.to_thread(self.admin_chain.append_many, deferred)
            for rec, entry in zip(deferred, entries, strict=True):
                _link_copy(rec, "admin", entry)
        if not batch:
            return
        if self.chain is not None:
            plain = [r for r in batch if r.get("kind") != "admin"]
            entries = await asyncio.to_thread(self.chain.append_many, plain)
            if isinstance(entries, list) and len(entries) == len(plain):  # not a broker sink
                for rec, entry in zip(plain, entries, strict=True):
                    _link_copy(rec, "messages", entry)
        if self.store is not None:
            try:
                await self.store.add_audit_many(batch)
            except Exception:  # noqa: BLE001 - the file keeps it; the store may be down
                pass
        self.written += len(batch)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        await self.flush()
