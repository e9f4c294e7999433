"""The runtime's own JSON Schema validator agrees with ``jsonschema`` on skill manifests."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path

import pytest
import yaml
from dingskill.schema_check import SchemaError, SchemaValidator
from dingskill.skills.manifest import schema

jsonschema = pytest.importorskip("jsonschema")
ROOT = Path(__file__).resolve().parents[2]


def _manifests() -> list[dict]:
    return [yaml.safe_load(p.read_text("utf-8")) for p in sorted(ROOT.glob("skills/*/skill.yaml"))]


def _mutations(m: dict):
    """Valid manifests and one broken field at a time, over every keyword the schema uses."""
    yield m
    bad_values = [None, True, -1, 0, 2.5, "", "Not A Version", "1.0.0\n", [1, 1], {"zz": 1}]
    stack = [((), m)]
    while stack:
        path, node = stack.pop()
        keys = node.items() if isinstance(node, dict) else enumerate(node)
        for k, v in keys:
            for bad in bad_values:
                clone = copy.deepcopy(m)
                target = clone
                for p in path:
                    target = target[p]
                target[k] = bad
                yield clone
            if isinstance(v, dict | list):
                stack.append(((*path, k), v))
    clone = copy.deepcopy(m)
    clone["unexpected"] = 1
    yield clone
    for key in list(m):
        clone = copy.deepcopy(m)
        del clone[key]
        yield clone


def _reference(schema_: dict | None = None):
    """jsonschema with the manifest's rule: a final ``$`` in a pattern is ``\\Z``."""

    def strict_pattern(validator, pattern, instance, schema_):
        if not validator.is_type(instance, "string"):
            return
        anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if not re.search(anchored, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")

    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": strict_pattern})
    return cls(schema() if schema_ is None else schema_)


def _key(issue) -> tuple:
    return (tuple(str(p) for p in issue.absolute_path), issue.validator)


def test_same_verdicts_and_errors_as_jsonschema():
    reference = _reference()
    ours = SchemaValidator(schema())
    checked = 0
    for manifest in _manifests():
        # every fifth mutation keeps this under ~10 s while covering every keyword
        for instance in itertools.islice(_mutations(manifest), 0, None, 5):
            want = sorted({_key(e) for e in reference.iter_errors(instance)})
            got = sorted({_key(e) for e in ours.iter_errors(instance)})
            assert got == want, json.dumps(instance, ensure_ascii=False)[:500]
            checked += 1
    assert checked > 350


def test_unknown_keywords_are_refused_not_ignored():
    with pytest.raises(SchemaError, match="not supported"):
        list(SchemaValidator({"dependentRequired": {"a": ["b"]}}).iter_errors({"a": 1}))


def test_runtime_config_schema_agrees_with_jsonschema():
    from dingskill.runtime.config import SCHEMA, load_config

    base = json.loads(json.dumps(load_config(None, environ={}).data))
    reference = _reference(SCHEMA)  # the same strict '$' as the manifest's
    ours = SchemaValidator(SCHEMA)
    checked = 0
    for instance in itertools.islice(_mutations(base), 0, None, 9):
        want = sorted({_key(e) for e in reference.iter_errors(instance)})
        got = sorted({_key(e) for e in ours.iter_errors(instance)})
        assert got == want, json.dumps(instance, ensure_ascii=False)[:500]
        checked += 1
    assert checked > 60
