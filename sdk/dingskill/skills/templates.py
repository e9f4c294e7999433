"""Response templates rendered in a Jinja2 sandbox, in bounded worker processes.

Templates see plain data only: ``message`` (text, sender_id, sender_nick, conversation_type),
``sender``, ``slots``, ``context`` (a copy), ``api`` (an HTTP action's kept fields), ``intent``
and ``confidence``. The immutable sandbox refuses attribute access to Python internals
(``__class__``, ``__globals__``, ...) and mutation of what it is given; huge powers and
repetitions (``9**(9**9)``, ``'a'*10**9``) are refused before they are computed.

Templates come from packages, so they render in separate worker processes
(:mod:`dingskill.skills._sandbox`): each has a memory limit (``RLIMIT_AS``), every render a
time limit (the worker is killed and replaced when it is exceeded) and an output limit. The
caller's thread waits; :func:`arender` / :func:`arender_tree` talk to an idle worker from the
event loop itself (the answer is read when the pipe is readable: no thread, ~0.1 ms instead
of ~0.6 ms through one), and wait in a thread only when every worker is busy, so the event
loop (and ``/healthz``) stays responsive while one user's template runs.

``mode="url"``: every ``{{ expression }}`` is percent-encoded as one path segment or query
value (``/``, ``?``, ``#``, ``&``, ``..`` cannot change the URL's shape); the literal text the
author wrote is kept as is. ``mode="target"`` (a follow-up's recipient): ``None`` renders as
nothing, so an API field that was absent gives an empty recipient, which is skipped.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import queue
import random
import select
import struct
import subprocess
import sys
import threading
import time
from functools import lru_cache
from pathlib import Path

from jinja2 import TemplateSyntaxError

from . import _sandbox
from .errors import TemplateError

__all__ = [
    "render",
    "render_tree",
    "arender",
    "arender_tree",
    "compile_template",
    "choose_variant",
    "configure",
    "MAX_OUTPUT",
]

MAX_OUTPUT = 20_000
TIMEOUT_S = 2.0
MEMORY_MB = 256
WORKERS = int(os.environ.get("DINGSKILL_TEMPLATE_WORKERS", "2") or 2)


@lru_cache(maxsize=2048)
def compile_template(source: str, mode: str = "text"):
    """Compile in this process (a syntax check; rendering happens in the workers)."""
    try:
        return _sandbox.compile_source(source, mode)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template line {exc.lineno}: {exc.message}: {source[:60]!r}") from exc
    except RecursionError as exc:
        raise TemplateError(f"template nests too deeply: {source[:60]!r}") from exc


def choose_variant(variants, seed: str) -> str:
    """Pick one variant of a response, reproducibly for a given seed (e.g. the message id)."""
    if isinstance(variants, str):
        return variants
    return random.Random(seed).choice(list(variants))


class _Worker:
    """One sandbox process speaking length-prefixed JSON over its stdin / stdout."""

    def __init__(self, memory_mb: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(Path(_sandbox.__file__)), str(memory_mb)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )

    def kill(self) -> None:
        try:
            self.proc.kill()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def _read(self, n: int, deadline: float) -> bytes:
        fd, buf = self.proc.stdout.fileno(), b""
        while len(buf) < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def call(self, frame: bytes, timeout_s: float) -> dict:
        """Send one request ``frame`` (:func:`_frame`) and wait for the answer."""
        self._send(frame)
        deadline = time.monotonic() + timeout_s
        (n,) = struct.unpack(">I", self._read(4, deadline))
        return json.loads(self._read(n, deadline))

    def _send(self, frame: bytes) -> None:
        self.proc.stdin.write(frame)
        self.proc.stdin.flush()

    async def acall(self, frame: bytes, timeout_s: float) -> dict:
        """:meth:`call` from the event loop: the answer is collected as the pipe becomes
        readable (``frame`` fits the pipe's buffer, so writing it does not block)."""
        loop = asyncio.get_running_loop()
        fd, buf, done = self.proc.stdout.fileno(), bytearray(), loop.create_future()

        def readable() -> None:
            if done.done():
                return
            try:
                chunk = os.read(fd, 65536)
            except OSError as exc:
                done.set_exception(exc)
                return
            if not chunk:
                done.set_exception(EOFError())
                return
            buf.extend(chunk)
            if len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">I", buf[:4])[0]:
                done.set_result(bytes(buf[4:]))

        self._send(frame)
        loop.add_reader(fd, readable)
        try:
            return json.loads(await asyncio.wait_for(done, timeout_s))
        finally:
            loop.remove_reader(fd)


def _frame(request: dict) -> bytes:
    data = json.dumps(request, ensure_ascii=False, default=str).encode()
    return struct.pack(">I", len(data)) + data


# a request up to this size is written from the event loop (a pipe buffers 64 KiB)
_INLINE_FRAME = 32_768


class _Pool:
    def __init__(self) -> None:
        self.size, self.timeout_s, self.memory_mb = WORKERS, TIMEOUT_S, MEMORY_MB
        self._idle: queue.Queue[_Worker] = queue.Queue()
        self._all: list[_Worker] = []
        self._lock = threading.Lock()

    def _get(self) -> _Worker:
        """An idle worker, or a new one while fewer than ``size`` run (a killed worker's
        place is taken by a new one, so waiters never wait for a worker that is gone)."""
        while True:
            try:
                return self._idle.get_nowait()
            except queue.Empty:
                pass
            with self._lock:
                if len(self._all) < self.size:
                    w = _Worker(self.memory_mb)
                    self._all.append(w)
                    return w
            try:
                return self._idle.get(timeout=0.05)
            except queue.Empty:
                continue

    def _drop(self, w: _Worker) -> None:
        w.kill()
        with self._lock:
            if w in self._all:
                self._all.remove(w)

    def run(self, frame: bytes) -> dict:
        """Render one request ``frame`` in a worker, waiting for one to be free."""
        w = self._get()
        try:
            out = w.call(frame, self.timeout_s)
        except BaseException as exc:
            raise self._failed(w, exc) from None
        self._idle.put(w)
        return out

    async def arun(self, frame: bytes) -> dict:
        """:meth:`run` from the event loop when a worker is idle and the frame is small;
        otherwise :meth:`run` in a thread (waiting for a worker must not hold the loop)."""
        try:
            w = self._idle.get_nowait() if len(frame) <= _INLINE_FRAME else None
        except queue.Empty:
            w = None
        if w is None:
            return await asyncio.to_thread(self.run, frame)
        try:
            out = await w.acall(frame, self.timeout_s)
        except BaseException as exc:
            raise self._failed(w, exc) from None
        self._idle.put(w)
        return out

    def _failed(self, w: _Worker, exc: BaseException) -> BaseException:
        """The worker ``w`` is stopped (it may be mid-render); the error to raise instead."""
        self._drop(w)
        if isinstance(exc, (TimeoutError, asyncio.TimeoutError)):  # distinct before 3.11
            return TemplateError(f"template took longer than {self.timeout_s:g} s and was stopped")
        if isinstance(exc, (EOFError, OSError, ValueError)):
            return TemplateError(
                f"template worker failed ({type(exc).__name__}; memory limit {self.memory_mb} MB?)"
            )
        return exc  # cancelled, interrupted: the worker's state is unknown, so it went too

    def close(self) -> None:
        with self._lock:
            workers, self._all = self._all, []
        for w in workers:
            w.kill()


_POOL = _Pool()
atexit.register(_POOL.close)


def configure(
    workers: int | None = None, timeout_s: float | None = None, memory_mb: int | None = None
) -> None:
    """Set the worker count, the time limit per render and the memory limit per worker
    (running workers are replaced)."""
    _POOL.close()
    if workers is not None:
        _POOL.size = max(1, int(workers))
    if timeout_s is not None:
        _POOL.timeout_s = float(timeout_s)
    if memory_mb is not None:
        _POOL.memory_mb = int(memory_mb)
    _POOL._idle = queue.Queue()


def _plain(tree) -> bool:
    """Plain text: nothing to render, so no worker (and no thread) is needed."""
    return isinstance(tree, str) and "{" not in tree


def render_tree(tree, variables: dict, mode: str = "text", max_output: int = MAX_OUTPUT):
    """Render every string inside a JSON-like structure (dicts, lists) in one worker call;
    errors become :class:`TemplateError`."""
    if _plain(tree):
        if len(tree) > max_output:
            raise TemplateError(f"rendered response is longer than {max_output} characters")
        return tree  # plain text: nothing to render
    return _rendered(_POOL.run(_request(tree, variables, mode, max_output)))


def _request(tree, variables: dict, mode: str, max_output: int) -> bytes:
    """The worker request frame for one render."""
    return _frame({"tree": tree, "vars": variables, "mode": mode, "max_output": max_output})


def _rendered(out: dict):
    """The worker's answer: the rendered tree, or its error as :class:`TemplateError`."""
    if "error" in out:
        raise TemplateError(out["error"])
    return out["ok"]


def render(source: str, variables: dict, mode: str = "text", max_output: int = MAX_OUTPUT) -> str:
    """Render ``source`` in a sandbox worker; errors become :class:`TemplateError`."""
    return render_tree(source, variables, mode, max_output)


async def arender_tree(tree, variables: dict, mode: str = "text", max_output: int = MAX_OUTPUT):
    """:func:`render_tree` without blocking the event loop (plain text, the common case of
    titles and fixed answers, is returned at once: no thread, no worker)."""
    if _plain(tree):
        return render_tree(tree, variables, mode, max_output)
    return _rendered(await _POOL.arun(_request(tree, variables, mode, max_output)))


async def arender(
    source: str, variables: dict, mode: str = "text", max_output: int = MAX_OUTPUT
) -> str:
    """:func:`render` without blocking the event loop."""
    return await arender_tree(source, variables, mode, max_output)
