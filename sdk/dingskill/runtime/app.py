"""``Runtime``: wires configuration, storage, skills, pipeline, channel, server, metrics and
audit together, and shuts down gracefully (SIGTERM / SIGINT: stop taking messages, finish the
ones in flight, flush the audit log)."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from ..security.crypto import Keyring
from ..security.rbac import AccessControl
from ..security.redact import Redactor
from ..skills.outbound_session import close_outbound_sessions
from ..skills.packaging import SkillHome
from .admin import AdminAPI
from .audit import AuditLog
from .config import ConfigError, RuntimeConfig
from .loopwatch import LoopWatch
from .media import UNSUPPORTED, MediaPolicy
from .metrics import Metrics
from .pipeline import Pipeline
from .replies import ReplySender
from .server import build_app, make_server
from .skills_loader import SkillSet, arbitration_options
from .stores import make_store
from .supervisor import WorkerRole

__all__ = ["Runtime"]

log = logging.getLogger("dingskill.runtime")


class Runtime:
    def __init__(
        self,
        config: RuntimeConfig,
        keyring: Keyring | None = None,
        role: WorkerRole | None = None,
    ) -> None:
        """``role``: which worker of a multi-process ``dingskill run`` this is (None: the only
        process); only worker 0 serves HTTP and writes the periodic reports."""
        self.config = config
        self.role = role
        enc = config.get("security.encrypt")
        self.keyring = (
            keyring if keyring is not None else (Keyring.from_env() if enc is not False else None)
        )
        if enc is True and self.keyring is None:
            raise ConfigError(
                "security.encrypt is true but no data key is set (DINGSKILL_DATA_KEYS or DINGSKILL_KEY_FILE)"
            )
        self.redactor = Redactor([config.app_secret or ""])
        self.metrics = Metrics()
        # the workers of one `dingskill run` share the file: worker 0 alone sweeps it
        self.store = make_store(config, self.keyring, sweep=role is None or role.primary)
        self.audit = AuditLog(
            config.get("audit.path"),
            self.store if config.get("audit.store") else None,
            self.keyring,
            config.get("audit.retention_days"),
            self.redactor,
            config.get("audit.alert_webhook"),
        )
        if config.get("baseline.enabled"):
            from ..security.baseline import BaselineConfig, BehaviourBaseline

            b = config["baseline"]
            self.audit.baseline = BehaviourBaseline(
                BaselineConfig(
                    window_s=b["window_s"],
                    factor=b["factor"],
                    sigmas=b["sigmas"],
                    min_count={"admin": b["min_admin"], "message": b["min_messages"]},
                )
            )
            self.audit.on_baseline_alert = lambda a: self.metrics.baseline_alerts.labels(
                a.kind
            ).inc()
        from .review import ReviewQueue

        self.review = ReviewQueue(
            Path(config.get("audit.path")).with_name("review.jsonl"),
            self.keyring,
            config.get("audit.retention_days"),
            config.get("report.low_confidence"),
        )
        self.home = SkillHome(config.get("skills.home"))
        limits = config["limits"]
        self.skills = SkillSet(
            self.home,
            limits["handler_timeout_s"],
            self.metrics,
            self.audit,
            secrets=config.get("skills.secrets"),
            allow_private=config.get("security.outbound_allow_private"),
            options=arbitration_options(config.data),
        )
        from ..security.rbac import ROLES, AccessError

        roles = {k: sorted(v) for k, v in ROLES.items()}
        roles.update(config.get("security.roles") or {})
        try:
            self.access = AccessControl(
                Path(config.get("skills.home")) / "access.json",
                roles=roles,
                audit=self.audit.admin_sink,
            )
        except AccessError as exc:
            raise ConfigError(f"security.roles: {exc}") from None
        self.admin = AdminAPI(
            self.home,
            self.access,
            self.skills,
            self.audit,
            self.store,
            self.metrics,
            allow_private=config.get("security.outbound_allow_private"),
        )
        self.pipeline = Pipeline(
            self.skills.current,
            self.store,
            self.metrics,
            self.audit,
            dict(limits),
            admin=self.admin.chat_command,
            engine_for=self.skills.for_message,
            review=self.review,
            # several processes of one `dingskill run` share the conversations
            shared_turns=bool(config.get("storage.shared_turns")) or role is not None,
        )
        from .understanding import Understanding, UnderstandingConfig

        self.understanding = Understanding(
            UnderstandingConfig(**config["understanding"]), self.metrics
        )
        self.pipeline.understanding = self.understanding
        msgs = config.get("messages")
        self.pipeline.media = MediaPolicy(
            {k: v for k, v in msgs["unsupported"].items() if v}
            | {k: v for k, v in UNSUPPORTED.items() if not msgs["unsupported"].get(k)},
            msgs["default_language"],
        )
        self.sender = ReplySender(
            limits["reply_timeout_s"],
            int(limits["reply_retries"]),
            limits["reply_backoff_s"],
            self.metrics,
        )
        ch = config["channels"]["enterprise_chat"]
        self.stream = self.webhook = None
        if ch["enabled"] and ch["mode"] == "stream":
            from .channels.stream import StreamChannel

            self.stream = StreamChannel(
                self.pipeline,
                self.sender,
                config.app_key,
                config.app_secret,
                ch["endpoint"],
                self.skills,
                self.audit,
                metrics=self.metrics,
                cards_config=config.get("cards"),
                events=config.get("events.subscribe"),
                openapi=openapi_options(ch, role.count if role else 1),
            )
        elif ch["enabled"]:
            from .channels.webhook import WebhookChannel

            self.webhook = WebhookChannel(
                self.pipeline,
                config.app_secret,
                ch["webhook"]["timeout"],
                self.audit,
                self.sender,
                max_skew_s=ch["webhook"]["max_skew_s"],
                delivery=self._robot_delivery(ch["endpoint"]),
            )
        self.server = None
        self.loopwatch = LoopWatch(self.metrics)
        self._tasks: list[asyncio.Task] = []
        self._server_task: asyncio.Task | None = None

    def _robot_delivery(self, endpoint: str | None):
        """Follow-ups in webhook mode: the robot OpenAPI of the app (AppKey = robot code),
        or None without an AppKey."""
        if not self.config.app_key:
            return None
        from .channels.stream import DEFAULT_ENDPOINT
        from .delivery import Delivery
        from .proactive import RobotSender
        from .replies import OpenApi

        api = OpenApi(
            endpoint or DEFAULT_ENDPOINT,
            self.config.app_key,
            self.config.app_secret,
            metrics=self.metrics,
            **openapi_options(self.config["channels"]["enterprise_chat"]),
        )
        robot = RobotSender(api, self.config.app_key)
        return Delivery(self.skills, self.sender, None, robot, self.metrics)

    async def readiness(self) -> dict:
        channel = self.stream or self.webhook
        return {
            "storage": await self.store.ping(),
            "channel": bool(channel.connected) if channel else True,
            "skills": self.skills.last_error is None,
        }

    async def start(self) -> None:
        if (
            self.config.get("skills.require_signature")
            and not self.home.config()["require_signature"]
        ):
            self.home.set_config(require_signature=True)
        await self.store.connect()
        await self.audit.start()
        self._start_checks()
        await asyncio.to_thread(self.skills.reload)
        self._tasks.append(
            asyncio.create_task(self.skills.watch(self.config.get("skills.reload_interval_s")))
        )
        self._tasks.append(asyncio.create_task(self.loopwatch.run()))
        self._tasks.append(asyncio.create_task(self._review_writer(2.0)))
        if self.role is None or self.role.primary:  # one server and one set of reports
            self.server = make_server(build_app(self), self.config)
            self._server_task = asyncio.create_task(self.server.serve())
            self._tasks.append(self._server_task)
            self._tasks.append(
                asyncio.create_task(
                    self._access_report(self.config.get("audit.access_report_interval_s"))
                )
            )
            if self.config.get("report.daily_at"):
                self._tasks.append(asyncio.create_task(self._daily_report()))
            while not self.server.started:
                if self._server_task.done():
                    self._server_task.result()  # raises the bind error
                await asyncio.sleep(0.01)
        channel = self.stream or self.webhook
        if channel is not None:
            await channel.start()
        worker = {"worker": str(self.role)} if self.role else {}
        self.audit.admin(
            "system", "runtime", "runtime.start", "ok", skills=len(self.skills.skills), **worker
        )
        log.info(
            "runtime started",
            extra={
                **worker,
                "port": self.server.config.port if self.server is not None else None,
                "channel": channel.describe() if channel else None,
                "storage": self.store.kind,
                "skills": [s.manifest.id for s in self.skills.skills],
            },
        )

    def _start_checks(self) -> None:
        """Leftovers of killed installs removed; plaintext storage said loudly."""
        removed = self.home.clean_stale()
        if removed:
            log.warning("removed leftovers of interrupted installs", extra={"paths": removed})
        if self.keyring is None:
            reason = (
                "no data key: message text, conversation context, staff and conversation ids "
                "and audit records are stored in PLAINTEXT; set DINGSKILL_DATA_KEYS or "
                "DINGSKILL_KEY_FILE (dingskill keys rotate --key-file keys.json creates one)"
            )
            log.warning(reason)
            self.audit.admin("system", "runtime", "security.plaintext", "warning", reason=reason)

    async def _access_report(self, interval_s: float) -> None:
        """The periodic review of who holds which role, written to the admin audit log."""
        while True:
            rows = await asyncio.to_thread(self.access.report)
            self.audit.admin("system", "access", "access.report", "ok", holdings=rows)
            await asyncio.sleep(interval_s)

    async def _review_writer(self, interval_s: float) -> None:
        """Write the buffered review utterances off the event loop."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.review.flush)
            except OSError as exc:
                log.error("review file write failed", extra={"error": str(exc)})

    async def report_now(self, post: bool | None = None):
        """Write (and post, as configured) the daily report of the last 24 h now."""
        from .report import build_daily_report

        await self.audit.flush()
        await asyncio.to_thread(self.review.flush)
        post = self.config.get("report.post") if post is None else post
        try:
            report = await asyncio.to_thread(
                build_daily_report,
                self.config,
                metrics_text=self.metrics.render().decode(),
                post=post,
                keyring=self.keyring,
            )
        except Exception as exc:  # noqa: BLE001 - a failed report is audited, never fatal
            self.audit.admin("system", "report", "report.daily", "failed", error=str(exc))
            log.error("daily report failed", extra={"error": str(exc)})
            return None
        self.audit.admin(
            "system", str(report.html), "report.daily", "ok", posted=report.posted or ""
        )
        return report

    async def _daily_report(self) -> None:
        """At ``report.daily_at`` (UTC) every day: the daily report."""
        import time as _time

        hh, mm = (int(x) for x in self.config.get("report.daily_at").split(":"))
        while True:
            now = _time.time()
            target = (now // 86400) * 86400 + hh * 3600 + mm * 60
            if target <= now:
                target += 86400
            await asyncio.sleep(target - now)
            await self.report_now()

    @property
    def port(self) -> int:
        servers = getattr(self.server, "servers", [])
        for s in servers:
            for sock in s.sockets:
                return sock.getsockname()[1]
        return self.config.get("server.port")

    async def stop(self) -> None:
        channel = self.stream or self.webhook
        if channel is not None:
            await channel.stop()
        self.audit.admin("system", "runtime", "runtime.stop", "ok")
        if self.server is not None:
            self.server.should_exit = True
        for t in self._tasks:  # all but the server's, which exits by itself (should_exit)
            if t is not self._server_task:
                t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.understanding.close()
        await asyncio.to_thread(self.review.flush)
        await self.audit.stop()
        await self.sender.close()
        await close_outbound_sessions()
        await self.store.close()
        log.info("runtime stopped")

    async def run(self) -> None:
        """Start, serve until SIGTERM / SIGINT, stop gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        starting = asyncio.ensure_future(self.start())
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():  # told to stop while starting (e.g. still connecting)
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
        else:
            starting.result()  # a failed start (a port in use) raises here
            await stopping
        stopping.cancel()
        await self.stop()


def tune_collector(thresholds: list[int]) -> None:
    """Set the cyclic garbage collector's thresholds of a process that serves messages
    (``processes.gc_thresholds``). Handling a message allocates thousands of short-lived
    objects; at Python's default gen0 threshold (700) a young collection ran every message or
    two. With 10,000 / 20 / 20 two workers served 6-11 % more distinct messages a second with
    a lower p99 (`bench/RESULTS.md`); the models themselves are frozen out of every
    collection once loaded (``skills_loader._freeze_heap``)."""
    import gc

    gc.set_threshold(*thresholds)


def openapi_options(channel: dict, processes: int = 1) -> dict:
    """The OpenAPI pacing options of ``channels.enterprise_chat``; with ``processes`` workers
    of one ``dingskill run``, each paces itself to its share of ``openapi_qps`` (the
    platform's limit is per app, not per connection)."""
    return {
        "qps": float(channel.get("openapi_qps", 20)) / max(1, processes),
        "qps_retries": int(channel.get("openapi_qps_retries", 6)),
    }
