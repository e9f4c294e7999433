"""``skill.yaml``: loading with line numbers, JSON Schema validation, the ``Manifest`` object."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from .._version import __version__
from .errors import ManifestError

__all__ = ["Manifest", "load_manifest", "schema", "parse_manifest", "version_tuple"]


@lru_cache(maxsize=1)
def schema() -> dict:
    """The published JSON Schema of ``skill.yaml`` (``dingskill schema skill``)."""
    return json.loads(
        resources.files("dingskill.skills").joinpath("skill.schema.json").read_text("utf-8")
    )


def version_tuple(v: str) -> tuple[int, int, int]:
    core = v.split("-")[0].split("+")[0]
    a, b, c = (int(x) for x in core.split("."))
    return a, b, c


def _lines(node, path=(), out=None) -> dict[tuple, int]:
    """Map each JSON path in a composed YAML node tree to its 1-based line."""
    out = {} if out is None else out
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            out[(*path, k.value)] = k.start_mark.line + 1
            _lines(v, (*path, k.value), out)
            out[(*path, k.value)] = k.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _lines(v, (*path, i), out)
    return out


@dataclass
class Manifest:
    id: str
    name: str
    version: str
    languages: list[str]
    dataset: dict
    intents: dict[str, dict]
    description: str = ""
    author: str = ""
    min_dingskill: str = "0.1.0"
    permissions: list[str] = field(default_factory=list)
    triggers: list[dict] = field(default_factory=list)
    slots: dict[str, dict] = field(default_factory=dict)
    classifier: dict = field(default_factory=dict)
    fallback: str = ""
    timeout_s: float = 5.0
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def handlers(self) -> list[str]:
        return sorted({r["handler"] for r in self.intents.values() if "handler" in r})


def parse_manifest(text: str, source: str = "skill.yaml") -> Manifest:
    """Validate manifest text; errors name ``file:line``, the field and the rule broken."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ManifestError(
            [f"{source}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]
        ) from exc
    if not isinstance(data, dict) or node is None:
        raise ManifestError([f"{source}:1: the manifest must be a mapping of fields"])
    lines = _lines(node)
    problems = []
    validator = jsonschema.Draft202012Validator(schema())
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        path = tuple(err.absolute_path)
        line = lines.get(path) or lines.get(path[:-1]) or 1
        name = ".".join(str(p) for p in path) or "(top level)"
        msg = err.message
        if err.validator == "pattern":
            msg = f"{err.instance!r} does not match {err.validator_value!r}"
            if path and path[-1] == "version":
                msg = f"{err.instance!r} is not a semantic version (X.Y.Z)"
            if path and path[-1] == "id":
                msg = f"{err.instance!r} is not a reverse-DNS id such as com.example.hr-assistant"
        elif err.validator == "anyOf" and len(path) == 2 and path[0] == "intents":
            msg = "a response needs 'template', 'handler' or 'card'"
        problems.append(f"{source}:{line}: {name}: {msg}")
    if not problems:
        intents = set(data["intents"])
        for i, trig in enumerate(data.get("triggers", [])):
            if trig["intent"] not in intents:
                problems.append(
                    f"{source}:{lines.get(('triggers', i, 'intent'), 1)}: triggers.{i}.intent: "
                    f"{trig['intent']!r} is not an intent of this skill"
                )
        for name, resp in data["intents"].items():
            for j, slot in enumerate(resp.get("flow", {}).get("slots", [])):
                if slot["name"] not in data.get("slots", {}):
                    problems.append(
                        f"{source}:{lines.get(('intents', name, 'flow', 'slots', j, 'name'), 1)}: "
                        f"intents.{name}.flow.slots.{j}.name: slot {slot['name']!r} is not declared under 'slots'"
                    )
        need = data.get("min_dingskill")
        if need and version_tuple(need) > version_tuple(__version__):
            problems.append(
                f"{source}:{lines.get(('min_dingskill',), 1)}: min_dingskill: needs dingskill {need}, this is {__version__}"
            )
    if problems:
        raise ManifestError(problems)
    known = {f for f in Manifest.__dataclass_fields__ if f != "raw"}
    return Manifest(**{k: v for k, v in data.items() if k in known}, raw=data)


def load_manifest(path) -> Manifest:
    path = Path(path)
    if path.is_dir():
        path = path / "skill.yaml"
    if not path.exists():
        raise ManifestError([f"{path}: not found (a skill folder holds skill.yaml)"])
    return parse_manifest(path.read_text(encoding="utf-8"), str(path))
