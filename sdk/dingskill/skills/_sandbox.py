"""The Jinja2 sandbox of response templates, and the worker process that renders them.

Imports nothing of dingskill, so the template worker starts fast and holds nothing of the
runtime: ``python -I _sandbox.py MEMORY_MB`` reads length-prefixed JSON requests on stdin
(``{"tree", "mode", "vars", "max_output"}``) and writes ``{"ok": tree}`` or
``{"error", "kind"}`` answers on stdout. Its address space is limited (``RLIMIT_AS``); the
parent kills it when a render takes too long (see :mod:`dingskill.skills.templates`).
"""

from __future__ import annotations

import json
import math
import struct
import sys
from functools import lru_cache
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

MAX_POWER_DIGITS = 1000  # a ** b refused when the result would have more digits
MAX_REPEAT = 100_000  # 'a' * n / [x] * n refused when the result would be longer


class OutputTooLong(Exception):
    pass


class SandboxEnv(ImmutableSandboxedEnvironment):
    """Immutable sandbox that also refuses huge powers and repetitions before computing them."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(left, int | float) and isinstance(right, int | float):
            size = abs(right) * math.log10(abs(left)) if abs(left) > 1 else 0
            if size > MAX_POWER_DIGITS:
                raise SecurityError(f"power with about {size:.0f} digits refused")
        if operator == "*":
            if isinstance(right, int) and not isinstance(left, int | float):
                seq, n = left, right
            elif isinstance(left, int) and not isinstance(right, int | float):
                seq, n = right, left
            else:
                seq, n = None, 0
            if isinstance(seq, str | list | tuple) and len(seq) * max(n, 0) > MAX_REPEAT:
                raise SecurityError(
                    f"repetition to {len(seq) * n} items refused (limit {MAX_REPEAT})"
                )
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_POWER_DIGITS * 4:
                    raise SecurityError("multiplication of huge numbers refused")
        return super().call_binop(context, operator, left, right)


def url_value(value) -> str:
    """One path segment or query value: everything but unreserved characters encoded."""
    out = quote(str(value), safe="")
    return out.replace(".", "%2E") if out in (".", "..") else out


def target_value(value):
    """A follow-up's recipient: a missing value (None, an API field that was absent) is ""."""
    return "" if value is None else value


FINALIZE = {"url": url_value, "target": target_value}


@lru_cache(maxsize=4)
def env(mode: str = "text") -> ImmutableSandboxedEnvironment:
    kw = {"finalize": FINALIZE[mode]} if mode in FINALIZE else {}
    e = SandboxEnv(undefined=StrictUndefined, autoescape=False, **kw)
    e.globals.clear()  # no range(), lipsum, dict, cycler, joiner, namespace
    return e


@lru_cache(maxsize=2048)
def compile_source(source: str, mode: str = "text"):
    return env(mode).from_string(source)


def render_one(source: str, variables: dict, mode: str, budget: list[int]) -> str:
    parts = []
    for chunk in compile_source(source, mode).generate(**variables):
        budget[0] -= len(chunk)
        if budget[0] < 0:
            raise OutputTooLong()
        parts.append(chunk)
    return "".join(parts)


def render_tree(tree, variables: dict, mode: str, budget: list[int]):
    if isinstance(tree, str):
        return render_one(tree, variables, mode, budget)
    if isinstance(tree, dict):
        return {k: render_tree(v, variables, mode, budget) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render_tree(v, variables, mode, budget) for v in tree]
    return tree


def answer(request: dict) -> dict:
    """Render one request; every failure becomes ``{"error", "kind"}``."""
    limit = int(request.get("max_output", 20_000))
    try:
        out = render_tree(request["tree"], request["vars"], request.get("mode", "text"), [limit])
        return {"ok": out}
    except OutputTooLong:
        return {"error": f"rendered response is longer than {limit} characters", "kind": "limit"}
    except TemplateSyntaxError as exc:
        return {"error": f"template line {exc.lineno}: {exc.message}", "kind": "syntax"}
    except SecurityError as exc:
        return {"error": f"template refused by the sandbox: {exc}", "kind": "security"}
    except UndefinedError as exc:
        return {"error": f"template uses an undefined value: {exc.message}", "kind": "undefined"}
    except MemoryError:
        return {"error": "template needs more memory than allowed", "kind": "limit"}
    except RecursionError:
        return {"error": "template nests or recurses too deeply", "kind": "limit"}
    except Exception as exc:  # noqa: BLE001 - any rendering failure is the author's template
        return {"error": f"template failed: {type(exc).__name__}: {exc}", "kind": "other"}


def _read(stream, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = stream.read(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def serve(memory_mb: int) -> None:
    import resource

    limit = memory_mb * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    src, dst = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            (n,) = struct.unpack(">I", _read(src, 4))
            request = json.loads(_read(src, n))
        except EOFError:
            return
        try:
            data = json.dumps(answer(request), ensure_ascii=False).encode()
        except MemoryError:
            data = b'{"error": "template needs more memory than allowed", "kind": "limit"}'
        dst.write(struct.pack(">I", len(data)) + data)
        dst.flush()


if __name__ == "__main__":
    serve(int(sys.argv[1]) if len(sys.argv) > 1 else 512)
