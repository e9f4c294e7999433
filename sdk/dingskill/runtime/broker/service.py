"""What the broker services share: their small HTTP app (``/metrics``, ``/healthz``,
``/readyz`` reflecting the broker and Redis) and running until SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

__all__ = ["service_app", "run_until_signal"]


def service_app(
    metrics, readiness: Callable[[], Awaitable[dict]], routes: list | None = None
) -> Starlette:
    async def render(request: Request):
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(request: Request):
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request):
        checks = await readiness()
        ok = all(checks.values())
        return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)

    return Starlette(
        routes=[
            Route("/metrics", render),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            *(routes or []),
        ]
    )


async def run_until_signal(start: Callable[[], Awaitable], stop: Callable[[], Awaitable]) -> None:
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, done.set)
    await start()
    await done.wait()
    await stop()
