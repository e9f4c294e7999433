"""The runtime's HTTP server: ``/metrics``, ``/healthz``, ``/readyz``, the webhook channel and
the admin API; TLS 1.2 or newer when ``server.ssl.enabled``."""

from __future__ import annotations

import ssl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["build_app", "make_server"]


def build_app(runtime) -> Starlette:
    async def metrics(request: Request):
        if not runtime.config.get("security.metrics_public"):
            _, refused = runtime.admin._check(request, "metrics.read")
            if refused:
                return refused
        return Response(
            runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def healthz(request: Request):
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request):
        checks = await runtime.readiness()
        return JSONResponse(
            {"ready": all(checks.values()), "checks": checks},
            status_code=200 if all(checks.values()) else 503,
        )

    routes = [Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz)]
    if runtime.webhook is not None:
        routes.append(
            Route(
                runtime.config.get("channels.enterprise_chat.webhook.path"),
                runtime.webhook.endpoint,
                methods=["POST"],
            )
        )
    routes += runtime.admin.routes()
    return Starlette(routes=routes)


def make_server(app, config):
    """A uvicorn server for ``app`` on ``server.host:server.port`` (TLS >= 1.2 if enabled)."""
    import uvicorn

    srv = config["server"]
    kw = {}
    if srv["ssl"]["enabled"]:
        kw = {"ssl_certfile": srv["ssl"]["cert_path"], "ssl_keyfile": srv["ssl"]["key_path"]}
    from .http_limits import CloseOnClientError, GuardedH11Protocol

    uc = uvicorn.Config(
        CloseOnClientError(app),  # the socket closes after every 4xx
        host=srv["host"],
        port=srv["port"],
        log_level="warning",
        access_log=False,
        lifespan="off",
        # headers within server.header_timeout_s, the body within body_timeout_s, at most
        # max_connections_per_client sockets per address, or the socket is closed
        http=type(
            "Guarded",
            (GuardedH11Protocol,),
            {
                "header_timeout_s": float(srv.get("header_timeout_s") or 10.0),
                "body_timeout_s": float(srv.get("body_timeout_s") or 10.0),
                "max_per_client": int(srv.get("max_connections_per_client") or 0),
            },
        ),
        timeout_keep_alive=5,
        limit_concurrency=2000,
        h11_max_incomplete_event_size=64 * 1024,
        **kw,
    )
    uc.load()
    if uc.ssl is not None:
        uc.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
    server = uvicorn.Server(uc)
    server.install_signal_handlers = lambda: None  # the runtime handles SIGTERM / SIGINT
    return server
