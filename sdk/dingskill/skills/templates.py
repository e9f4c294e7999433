"""Response templates rendered in a Jinja2 sandbox.

Templates see plain data only: ``message`` (text, sender_id, sender_nick, conversation_type),
``sender``, ``slots``, ``context`` (a copy), ``api`` (an HTTP action's kept fields), ``intent``
and ``confidence``. The immutable sandbox refuses attribute access to Python internals
(``__class__``, ``__globals__``, ...) and mutation of what it is given.
"""

from __future__ import annotations

import random
from functools import lru_cache

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from .errors import TemplateError

__all__ = ["render", "compile_template", "choose_variant"]

MAX_OUTPUT = 20_000


@lru_cache(maxsize=1)
def _env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.globals.clear()  # no range(), lipsum, dict, cycler, joiner, namespace
    return env


@lru_cache(maxsize=2048)
def compile_template(source: str):
    try:
        return _env().from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template line {exc.lineno}: {exc.message}: {source[:60]!r}") from exc


def choose_variant(variants, seed: str) -> str:
    """Pick one variant of a response, reproducibly for a given seed (e.g. the message id)."""
    if isinstance(variants, str):
        return variants
    return random.Random(seed).choice(list(variants))


def render(source: str, variables: dict) -> str:
    """Render ``source`` in the sandbox; errors become :class:`TemplateError`."""
    try:
        out = compile_template(source).render(**variables)
    except SecurityError as exc:
        raise TemplateError(f"template refused by the sandbox: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateError(f"template uses an undefined value: {exc.message}") from exc
    except TemplateError:
        raise
    except Exception as exc:  # noqa: BLE001 - any rendering failure is the author's template
        raise TemplateError(f"template failed: {type(exc).__name__}: {exc}") from exc
    if len(out) > MAX_OUTPUT:
        raise TemplateError(f"rendered response has {len(out)} characters, limit {MAX_OUTPUT}")
    return out
