"""Response templates rendered in a Jinja2 sandbox.

Templates see plain data only: ``message`` (text, sender_id, sender_nick, conversation_type),
``sender``, ``slots``, ``context`` (a copy), ``api`` (an HTTP action's kept fields), ``intent``
and ``confidence``. The immutable sandbox refuses attribute access to Python internals
(``__class__``, ``__globals__``, ...) and mutation of what it is given; huge powers and
repetitions (``9**(9**9)``, ``'a'*10**9``) are refused before they are computed.

``mode="url"``: every ``{{ expression }}`` is percent-encoded as one path segment or query
value (``/``, ``?``, ``#``, ``&``, ``..`` cannot change the URL's shape); the literal text the
author wrote is kept as is.
"""

from __future__ import annotations

import random
from functools import lru_cache
from urllib.parse import quote

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import TemplateError

__all__ = ["render", "render_tree", "compile_template", "choose_variant", "MAX_OUTPUT"]

MAX_OUTPUT = 20_000
MAX_POWER_DIGITS = 1000  # a ** b refused when the result would have more digits
MAX_REPEAT = 100_000  # 'a' * n / [x] * n refused when the result would be longer


class _Env(ImmutableSandboxedEnvironment):
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context, operator, left, right):
        if operator == "**":
            if isinstance(left, int | float) and isinstance(right, int | float):
                import math

                size = abs(right) * math.log10(abs(left)) if abs(left) > 1 else 0
                if size > MAX_POWER_DIGITS:
                    raise SecurityError(f"power with about {size:.0f} digits refused")
        if operator == "*":
            seq, n = (
                (left, right)
                if isinstance(right, int)
                else (right, left)
                if isinstance(left, int)
                else (None, 0)
            )
            if isinstance(seq, str | list | tuple) and len(seq) * max(n, 0) > MAX_REPEAT:
                raise SecurityError(
                    f"repetition to {len(seq) * n} items refused (limit {MAX_REPEAT})"
                )
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > MAX_POWER_DIGITS * 4:
                    raise SecurityError("multiplication of huge numbers refused")
        return super().call_binop(context, operator, left, right)


def _url_value(value) -> str:
    out = quote(str(value), safe="")
    return out.replace(".", "%2E") if out in (".", "..") else out


@lru_cache(maxsize=2)
def _env(mode: str = "text") -> ImmutableSandboxedEnvironment:
    kw = {"finalize": _url_value} if mode == "url" else {}
    env = _Env(undefined=StrictUndefined, autoescape=False, **kw)
    env.globals.clear()  # no range(), lipsum, dict, cycler, joiner, namespace
    return env


@lru_cache(maxsize=2048)
def compile_template(source: str, mode: str = "text"):
    try:
        return _env(mode).from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template line {exc.lineno}: {exc.message}: {source[:60]!r}") from exc
    except RecursionError as exc:
        raise TemplateError(f"template nests too deeply: {source[:60]!r}") from exc


def choose_variant(variants, seed: str) -> str:
    """Pick one variant of a response, reproducibly for a given seed (e.g. the message id)."""
    if isinstance(variants, str):
        return variants
    return random.Random(seed).choice(list(variants))


def render(source: str, variables: dict, mode: str = "text", max_output: int = MAX_OUTPUT) -> str:
    """Render ``source`` in the sandbox; errors become :class:`TemplateError`."""
    parts: list[str] = []
    size = 0
    try:
        for chunk in compile_template(source, mode).generate(**variables):
            size += len(chunk)
            if size > max_output:
                raise TemplateError(
                    f"rendered response is longer than the limit of {max_output} characters"
                )
            parts.append(chunk)
    except SecurityError as exc:
        raise TemplateError(f"template refused by the sandbox: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateError(f"template uses an undefined value: {exc.message}") from exc
    except TemplateError:
        raise
    except MemoryError as exc:
        raise TemplateError("template needs more memory than allowed") from exc
    except Exception as exc:  # noqa: BLE001 - any rendering failure is the author's template
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from exc
    return "".join(parts)


def render_tree(tree, variables: dict, mode: str = "text"):
    """Render every string inside a JSON-like structure (dicts, lists) with ``render``."""
    if isinstance(tree, str):
        return render(tree, variables, mode)
    if isinstance(tree, dict):
        return {k: render_tree(v, variables, mode) for k, v in tree.items()}
    if isinstance(tree, list):
        return [render_tree(v, variables, mode) for v in tree]
    return tree
