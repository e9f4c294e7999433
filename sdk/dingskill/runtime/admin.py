"""Operator actions over HTTP (bearer API tokens) and as chat commands (staff ids), each
checked against the RBAC matrix and audited."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..security.rbac import AccessControl
from ..skills.conversation import Message, Reply
from ..skills.packaging import PackageError, SkillHome

__all__ = ["AdminAPI"]


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
        body = await request.json()
        decision, refused = self._check(request, "skills.install", str(body.get("source", "")))
        if refused:
            return refused
        ip = request.client.host if request.client else ""
        try:
            info = await asyncio.to_thread(
                self.home.install,
                body["source"],
                body.get("version"),
                bool(body.get("trust")),
                decision.subject,
                [str(h) for h in body.get("allow_hosts") or []],
            )
        except (PackageError, KeyError) as exc:
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
        limit = int(request.query_params.get("limit", 100))
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
