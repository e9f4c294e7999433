"""Operator actions over HTTP (bearer API tokens) and as chat commands (staff ids), each
checked against the RBAC matrix and audited.

Requests are authenticated before their body is read; bodies are streamed with a size limit
and malformed input gets a 4xx naming the problem. Chat commands that change state
(``/rollback``, ``/reload``) run only after a fresh confirmation: the bot answers with a
one-time code that the same person must send back (``/confirm CODE``) in the same chat within
``CONFIRM_TTL_S`` seconds."""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..security.rbac import AccessControl
from ..skills.conversation import Message, Reply
from ..skills.outbound import OutboundPolicy
from ..skills.packaging import PackageError, SkillHome
from .http_limits import BodyError, read_json

__all__ = ["AdminAPI", "CONFIRM_TTL_S"]

CONFIRM_TTL_S = 60.0
MAX_INSTALL_BODY = 64 * 1024
STATE_CHANGING = ("/rollback", "/reload")


class AdminAPI:
    def __init__(
        self,
        home: SkillHome,
        access: AccessControl,
        skills,
        audit,
        store,
        metrics=None,
        reload_config=None,
        allow_private=(),
    ) -> None:
        self.home, self.access, self.skills, self.audit, self.store = (
            home,
            access,
            skills,
            audit,
            store,
        )
        self.metrics = metrics
        self.reload_config = reload_config
        # downloads for POST /admin/skills: public addresses only unless the operator allows
        self.download_policy = OutboundPolicy(allow_private=tuple(allow_private or ()))
        self._pending: dict[tuple[str, str], tuple[str, float, str]] = {}

    def _subject(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else None
        return self.access.authenticate(token)

    def _check(self, request: Request, permission: str, obj: str = ""):
        ip = request.client.host if request.client else ""
        decision = self.access.authorize(self._subject(request), permission, client_ip=ip, obj=obj)
        if not decision.allowed:
            if self.metrics is not None:
                self.metrics.denied.inc()
            return decision, JSONResponse(
                {"error": "forbidden", "permission": permission, "reason": decision.reason},
                status_code=403 if decision.subject != "anonymous" else 401,
            )
        return decision, None

    async def list_skills(self, request: Request):
        _, refused = self._check(request, "skills.list")
        if refused:
            return refused
        return JSONResponse([s.to_dict() for s in self.home.installed()])

    async def install(self, request: Request):
        decision, refused = self._check(request, "skills.install")
        if refused:
            return refused
        try:
            body = await read_json(request, MAX_INSTALL_BODY)
            source, hosts = body.get("source"), body.get("allow_hosts") or []
            if not isinstance(source, str) or not source:
                raise BodyError(400, "field 'source' (a package URL or path) is required")
            if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
                raise BodyError(400, "field 'allow_hosts' must be a list of host names")
            version = body.get("version")
            if version is not None and not isinstance(version, str):
                raise BodyError(400, "field 'version' must be a string")
        except BodyError as exc:
            return exc.response()
        ip = request.client.host if request.client else ""
        try:
            info = await asyncio.to_thread(
                self.home.install,
                source,
                version,
                body.get("trust") is True,
                decision.subject,
                hosts,
                self.download_policy,
            )
        except PackageError as exc:
            self.audit.admin(
                decision.subject,
                str(body.get("source")),
                "skills.install",
                "refused",
                ip,
                error=str(exc),
            )
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.audit.admin(
            decision.subject,
            f"{info.id}@{info.version}",
            "skills.install",
            "ok",
            ip,
            signature=info.signature,
        )
        await asyncio.to_thread(self.skills.reload)
        return JSONResponse(info.to_dict())

    async def rollback(self, request: Request):
        sid = request.path_params["skill_id"]
        decision, refused = self._check(request, "skills.rollback", sid)
        if refused:
            return refused
        ip = request.client.host if request.client else ""
        try:
            info = await asyncio.to_thread(self.home.rollback, sid, decision.subject)
        except PackageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        self.audit.admin(decision.subject, f"{info.id}@{info.version}", "skills.rollback", "ok", ip)
        await asyncio.to_thread(self.skills.reload)
        return JSONResponse(info.to_dict())

    # -- visibility and staged release ----------------------------------------------------------
    def _release(self, request: Request, subject: str):
        from ..skills.release import ReleaseManager

        ip = request.client.host if request.client else ""

        def sink(rec: dict) -> None:
            rec = dict(rec)
            self.audit.admin(
                subject,
                rec.pop("object"),
                rec.pop("operation"),
                rec.pop("result"),
                ip,
                **{k: v for k, v in rec.items() if k != "actor"},
            )

        return ReleaseManager(self.home, audit=sink)

    async def release_show(self, request: Request):
        sid = request.path_params["skill_id"]
        decision, refused = self._check(request, "skills.list", sid)
        if refused:
            return refused
        try:
            plan = self._release(request, decision.subject).plan(sid)
        except PackageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        return JSONResponse(plan.to_dict())

    async def release_change(self, request: Request):
        """POST /admin/skills/{id}/release {"version", "audience", "staff"|"groups"|"percent"};
        /switch {"version"}; /switch-back {}."""
        from ..skills.release import Visibility

        sid = request.path_params["skill_id"]
        action = request.url.path.rsplit("/", 1)[-1]
        decision, refused = self._check(request, "skills.release", f"{sid} {action}")
        if refused:
            return refused
        try:
            body = await read_json(request, 64 * 1024) if action != "switch-back" else {}
        except BodyError as exc:
            return exc.response()
        manager = self._release(request, decision.subject)
        try:
            if action != "switch-back":
                version = body.get("version")
                if not isinstance(version, str) or not version:
                    raise BodyError(
                        400, f'version: expected a version string such as "1.2.0", got {version!r}'
                    )
            if action == "release":
                audience = body.get("audience")
                vis = None if audience in (None, "nobody") else Visibility.from_dict(body)
                call = (manager.set_visibility, sid, version, vis, decision.subject)
            elif action == "switch":
                call = (manager.switch, sid, version, decision.subject)
            else:
                call = (manager.switch_back, sid, decision.subject)
            plan = await asyncio.to_thread(*call)
        except BodyError as exc:
            return exc.response()
        except PackageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        await asyncio.to_thread(self.skills.reload)
        return JSONResponse(plan.to_dict())

    async def remove(self, request: Request):
        sid = request.path_params["skill_id"]
        decision, refused = self._check(request, "skills.remove", sid)
        if refused:
            return refused
        try:
            await asyncio.to_thread(self.home.remove, sid)
        except PackageError as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        self.audit.admin(
            decision.subject,
            sid,
            "skills.remove",
            "ok",
            request.client.host if request.client else "",
        )
        await asyncio.to_thread(self.skills.reload)
        return JSONResponse({"removed": sid})

    async def reload(self, request: Request):
        decision, refused = self._check(request, "config.reload")
        if refused:
            return refused
        changed = await asyncio.to_thread(self.skills.reload)
        if self.reload_config is not None:
            self.reload_config()
        self.audit.admin(
            decision.subject,
            "runtime",
            "config.reload",
            "ok",
            request.client.host if request.client else "",
        )
        return JSONResponse({"reloaded": True, "skills_changed": changed})

    async def audit_records(self, request: Request):
        _, refused = self._check(request, "audit.read")
        if refused:
            return refused
        await self.audit.flush()
        raw = request.query_params.get("limit", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 10000:
            return JSONResponse(
                {"error": f"limit: expected a whole number from 1 to 10000, got {raw[:20]!r}"},
                status_code=400,
            )
        limit = int(raw)
        records = await self.store.read_audit()
        return JSONResponse(records[-limit:])

    async def context(self, request: Request):
        key = request.path_params["key"]
        _, refused = self._check(request, "context.read", key)
        if refused:
            return refused
        return JSONResponse(await self.store.get_context(key))

    def routes(self):
        from starlette.routing import Route

        return [
            Route("/admin/skills", self.list_skills, methods=["GET"]),
            Route("/admin/skills", self.install, methods=["POST"]),
            Route("/admin/skills/{skill_id}/rollback", self.rollback, methods=["POST"]),
            Route("/admin/skills/{skill_id}/release", self.release_show, methods=["GET"]),
            Route("/admin/skills/{skill_id}/release", self.release_change, methods=["POST"]),
            Route("/admin/skills/{skill_id}/switch", self.release_change, methods=["POST"]),
            Route("/admin/skills/{skill_id}/switch-back", self.release_change, methods=["POST"]),
            Route("/admin/skills/{skill_id}", self.remove, methods=["DELETE"]),
            Route("/admin/reload", self.reload, methods=["POST"]),
            Route("/admin/audit", self.audit_records, methods=["GET"]),
            Route("/admin/context/{key:path}", self.context, methods=["GET"]),
        ]

    # -- chat commands -------------------------------------------------------------------------
    async def chat_command(self, message: Message, text: str) -> Reply | None:
        """``/skills`` and ``/reload`` from DingTalk staff; None when ``text`` is no command."""
        cmd = text.split()[0].lower()
        perms = {
            "/skills": "skills.list",
            "/reload": "config.reload",
            "/rollback": "skills.rollback",
        }
        if cmd == "/confirm":
            return await self._confirm(message, text.split()[1:])
        if cmd not in perms:
            return None
        args = text.split()[1:]
        decision = self.access.authorize(
            f"staff:{message.sender_id}", perms[cmd], obj=" ".join(args) or cmd
        )
        if not decision.allowed:
            if self.metrics is not None:
                self.metrics.denied.inc()
            return Reply(
                text="抱歉，您没有执行该操作的权限。/ Sorry, you are not allowed to do that.",
                source="admin",
                intent=cmd,
                error="forbidden",
            )
        if cmd in STATE_CHANGING:
            if cmd == "/rollback" and not args:
                return Reply(text="usage: /rollback <skill id>", source="admin", intent=cmd)
            code = f"{secrets.randbelow(10**6):06d}"
            key = (message.sender_id, message.conversation_id)
            now = time.monotonic()
            self._pending = {k: v for k, v in self._pending.items() if v[1] > now}
            self._pending[key] = (code, now + CONFIRM_TTL_S, " ".join([cmd, *args]))
            self.audit.admin(
                decision.subject, " ".join(args) or "runtime", f"{cmd[1:]}.requested", "pending"
            )
            return Reply(
                text=(
                    f"请在 {CONFIRM_TTL_S:g} 秒内发送 /confirm {code} 确认执行「{' '.join([cmd, *args])}」。\n"
                    f"Send /confirm {code} within {CONFIRM_TTL_S:g} s to run "
                    f"'{' '.join([cmd, *args])}'."
                ),
                source="admin",
                intent=cmd,
            )
        return await self._run(cmd, args, decision)

    async def _confirm(self, message: Message, args: list[str]) -> Reply:
        """Run the command waiting for this person's confirmation in this chat."""
        key = (message.sender_id, message.conversation_id)
        pending = self._pending.pop(key, None)
        ok = (
            pending is not None
            and len(args) == 1
            and pending[1] > time.monotonic()
            and hmac.compare_digest(pending[0], args[0])
        )
        if not ok:
            self.audit.admin(
                f"staff:{message.sender_id}", "chat", "confirm", "refused", error="no valid code"
            )
            return Reply(
                text="没有待确认的操作，或确认码错误/已过期。/ Nothing to confirm, or the code is "
                "wrong or expired.",
                source="admin",
                intent="/confirm",
                error="confirmation refused",
            )
        cmd, *rest = pending[2].split()
        perms = {"/reload": "config.reload", "/rollback": "skills.rollback"}
        decision = self.access.authorize(
            f"staff:{message.sender_id}", perms[cmd], obj=" ".join(rest) or cmd
        )
        if not decision.allowed:
            return Reply(
                text="抱歉，您没有执行该操作的权限。/ Sorry, you are not allowed to do that.",
                source="admin",
                intent=cmd,
                error="forbidden",
            )
        return await self._run(cmd, rest, decision)

    async def _run(self, cmd: str, args: list[str], decision) -> Reply:
        if cmd == "/skills":
            rows = [f"- {s.id} {s.version} ({s.signature})" for s in self.home.installed()]
            return Reply(
                text="\n".join(rows) or "no skills installed",
                source="admin",
                intent=cmd,
                format="markdown",
                title="skills",
            )
        if cmd == "/reload":
            changed = await asyncio.to_thread(self.skills.reload)
            self.audit.admin(decision.subject, "runtime", "config.reload", "ok", via="chat")
            return Reply(
                text=f"reloaded ({'skills changed' if changed else 'no change'})",
                source="admin",
                intent=cmd,
            )
        if not args:
            return Reply(text="usage: /rollback <skill id>", source="admin", intent=cmd)
        try:
            info = await asyncio.to_thread(self.home.rollback, args[0], decision.subject)
        except PackageError as exc:
            return Reply(text=str(exc), source="admin", intent=cmd, error=str(exc))
        self.audit.admin(
            decision.subject, f"{info.id}@{info.version}", "skills.rollback", "ok", via="chat"
        )
        await asyncio.to_thread(self.skills.reload)
        return Reply(text=f"{info.id} rolled back to {info.version}", source="admin", intent=cmd)
