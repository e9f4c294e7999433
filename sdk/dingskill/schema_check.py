"""A small JSON Schema (draft 2020-12) validator for dingskill's own published schemas.

The runtime validates every installed skill's manifest at start-up; ``import jsonschema`` costs
seconds (it builds URI grammars at import), so the runtime path uses this validator instead.
It covers the keywords our schemas use (``type``, ``properties``, ``additionalProperties``,
``patternProperties``, ``required``, ``items``, ``enum``, ``const``, numeric and length limits,
``pattern`` (a final ``$`` read as ``\\Z``), ``minItems``/``maxItems``, ``uniqueItems``, ``minProperties``/``maxProperties``, ``propertyNames``, ``oneOf``,
``anyOf``, ``allOf``, local ``$ref``) and raises on any other, so a schema can never be
silently under-checked. ``tests/skills`` checks it agrees with ``jsonschema``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

__all__ = ["SchemaError", "SchemaValidator", "ValidationIssue"]

_ANNOTATIONS = {
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "$defs",
}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


class SchemaError(ValueError):
    """The schema itself uses a keyword this validator does not implement."""


@dataclass
class ValidationIssue:
    """One violation, shaped like ``jsonschema.ValidationError`` where the manifest needs it."""

    message: str
    validator: str
    validator_value: Any
    instance: Any
    absolute_path: tuple = field(default_factory=tuple)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: ``True`` is not ``1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


class SchemaValidator:
    """Validates instances against one schema; ``iter_errors`` yields every violation."""

    def __init__(self, schema: dict) -> None:
        self.schema = schema

    def _resolve(self, ref: str) -> dict:
        if not ref.startswith("#/"):
            raise SchemaError(f"only local $ref are supported, not {ref!r}")
        node: Any = self.schema
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def is_valid(self, instance: Any, schema: dict | None = None) -> bool:
        return next(self.iter_errors(instance, schema), None) is None

    def iter_errors(
        self, instance: Any, schema: dict | bool | None = None, path: tuple = ()
    ) -> Iterator[ValidationIssue]:
        schema = self.schema if schema is None else schema
        if schema is True:
            return
        if schema is False:
            yield ValidationIssue(f"{instance!r} is not allowed", "false", False, instance, path)
            return
        for key, value in schema.items():
            if key in _ANNOTATIONS:
                continue
            check = getattr(self, "_" + key.lstrip("$"), None)
            if check is None:
                raise SchemaError(f"JSON Schema keyword {key!r} is not supported")
            yield from check(value, instance, schema, path)

    # --- keywords -----------------------------------------------------------------------
    def _ref(self, ref, instance, schema, path):
        yield from self.iter_errors(instance, self._resolve(ref), path)

    def _type(self, types, instance, schema, path):
        names = [types] if isinstance(types, str) else types
        if not any(_TYPES[t](instance) for t in names):
            shown = repr(types) if isinstance(types, str) else repr(list(types))
            yield ValidationIssue(
                f"{instance!r} is not of type {shown}", "type", types, instance, path
            )

    def _enum(self, values, instance, schema, path):
        if not any(_same(instance, v) for v in values):
            yield ValidationIssue(
                f"{instance!r} is not one of {values!r}", "enum", values, instance, path
            )

    def _const(self, value, instance, schema, path):
        if not _same(instance, value):
            yield ValidationIssue(f"{value!r} was expected", "const", value, instance, path)

    def _number(self, key, limit, instance, path, bad, words):
        if _TYPES["number"](instance) and bad(instance, limit):
            yield ValidationIssue(f"{instance!r} is {words} {limit!r}", key, limit, instance, path)

    def _minimum(self, limit, instance, schema, path):
        yield from self._number(
            "minimum", limit, instance, path, lambda v, m: v < m, "less than the minimum of"
        )

    def _maximum(self, limit, instance, schema, path):
        yield from self._number(
            "maximum", limit, instance, path, lambda v, m: v > m, "greater than the maximum of"
        )

    def _exclusiveMinimum(self, limit, instance, schema, path):  # noqa: N802 - JSON Schema name
        yield from self._number(
            "exclusiveMinimum",
            limit,
            instance,
            path,
            lambda v, m: v <= m,
            "less than or equal to the minimum of",
        )

    def _exclusiveMaximum(self, limit, instance, schema, path):  # noqa: N802
        yield from self._number(
            "exclusiveMaximum",
            limit,
            instance,
            path,
            lambda v, m: v >= m,
            "greater than or equal to the maximum of",
        )

    def _minLength(self, limit, instance, schema, path):  # noqa: N802
        if isinstance(instance, str) and len(instance) < limit:
            what = "should be non-empty" if limit == 1 else f"is too short (minimum {limit})"
            yield ValidationIssue(f"{instance!r} {what}", "minLength", limit, instance, path)

    def _maxLength(self, limit, instance, schema, path):  # noqa: N802
        if isinstance(instance, str) and len(instance) > limit:
            yield ValidationIssue(
                f"{instance!r} is too long (maximum {limit})", "maxLength", limit, instance, path
            )

    def _pattern(self, pattern, instance, schema, path):
        # a final ``$`` is read as ``\Z``: it must not accept a trailing newline
        anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if isinstance(instance, str) and not _regex(anchored).search(instance):
            yield ValidationIssue(
                f"{instance!r} does not match {pattern!r}", "pattern", pattern, instance, path
            )

    def _minItems(self, limit, instance, schema, path):  # noqa: N802
        if isinstance(instance, list) and len(instance) < limit:
            what = "should be non-empty" if limit == 1 else f"is too short (minimum {limit})"
            yield ValidationIssue(f"{instance!r} {what}", "minItems", limit, instance, path)

    def _maxItems(self, limit, instance, schema, path):  # noqa: N802
        if isinstance(instance, list) and len(instance) > limit:
            yield ValidationIssue(
                f"{instance!r} is too long (maximum {limit})", "maxItems", limit, instance, path
            )

    def _uniqueItems(self, unique, instance, schema, path):  # noqa: N802
        if unique and isinstance(instance, list):
            for i, a in enumerate(instance):
                if any(_same(a, b) for b in instance[i + 1 :]):
                    yield ValidationIssue(
                        f"{instance!r} has non-unique elements",
                        "uniqueItems",
                        unique,
                        instance,
                        path,
                    )
                    return

    def _minProperties(self, limit, instance, schema, path):  # noqa: N802
        if isinstance(instance, dict) and len(instance) < limit:
            what = (
                "should be non-empty"
                if limit == 1
                else f"does not have enough properties (minimum {limit})"
            )
            yield ValidationIssue(f"{instance!r} {what}", "minProperties", limit, instance, path)

    def _maxProperties(self, limit, instance, schema, path):  # noqa: N802
        if isinstance(instance, dict) and len(instance) > limit:
            yield ValidationIssue(
                f"{instance!r} has too many properties (maximum {limit})",
                "maxProperties",
                limit,
                instance,
                path,
            )

    def _propertyNames(self, sub, instance, schema, path):  # noqa: N802
        if isinstance(instance, dict):
            for name in instance:
                yield from self.iter_errors(name, sub, path)

    def _required(self, names, instance, schema, path):
        if isinstance(instance, dict):
            for name in names:
                if name not in instance:
                    yield ValidationIssue(
                        f"{name!r} is a required property", "required", names, instance, path
                    )

    def _properties(self, props, instance, schema, path):
        if isinstance(instance, dict):
            for name, sub in props.items():
                if name in instance:
                    yield from self.iter_errors(instance[name], sub, (*path, name))

    def _patternProperties(self, props, instance, schema, path):  # noqa: N802
        if isinstance(instance, dict):
            for pattern, sub in props.items():
                for name, value in instance.items():
                    if _regex(pattern).search(name):
                        yield from self.iter_errors(value, sub, (*path, name))

    def _additionalProperties(self, extra, instance, schema, path):  # noqa: N802
        if not isinstance(instance, dict):
            return
        known = schema.get("properties", {})
        patterns = [_regex(p) for p in schema.get("patternProperties", {})]
        others = [k for k in instance if k not in known and not any(p.search(k) for p in patterns)]
        if extra is False:
            if others:
                names = ", ".join(repr(k) for k in others)
                verb = "was" if len(others) == 1 else "were"
                yield ValidationIssue(
                    f"Additional properties are not allowed ({names} {verb} unexpected)",
                    "additionalProperties",
                    extra,
                    instance,
                    path,
                )
            return
        for name in others:
            yield from self.iter_errors(instance[name], extra, (*path, name))

    def _items(self, sub, instance, schema, path):
        if isinstance(instance, list):
            for i, value in enumerate(instance):
                yield from self.iter_errors(value, sub, (*path, i))

    def _allOf(self, subs, instance, schema, path):  # noqa: N802
        for sub in subs:
            yield from self.iter_errors(instance, sub, path)

    def _anyOf(self, subs, instance, schema, path):  # noqa: N802
        if not any(self.is_valid(instance, sub) for sub in subs):
            yield ValidationIssue(
                f"{instance!r} is not valid under any of the given schemas",
                "anyOf",
                subs,
                instance,
                path,
            )

    def _oneOf(self, subs, instance, schema, path):  # noqa: N802
        good = sum(self.is_valid(instance, sub) for sub in subs)
        if good == 0:
            yield ValidationIssue(
                f"{instance!r} is not valid under any of the given schemas",
                "oneOf",
                subs,
                instance,
                path,
            )
        elif good > 1:
            yield ValidationIssue(
                f"{instance!r} is valid under each of several schemas",
                "oneOf",
                subs,
                instance,
                path,
            )
