"""``skill.yaml``: loading with line numbers, JSON Schema validation, the ``Manifest`` object."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from .._version import __version__
from ..schema_check import SchemaValidator
from .errors import ManifestError

__all__ = ["Manifest", "load_manifest", "schema", "parse_manifest", "version_tuple", "safe_yaml"]

MAX_MANIFEST_BYTES = 1 * 2**20
MAX_YAML_DEPTH = 64
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 200_000  # after alias expansion


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


def safe_yaml(text: str, source: str, what: str = "YAML"):
    """``(node, data)`` of YAML text from a stranger: size, nesting depth, alias count and
    expanded size are checked on the event stream / node graph before any object is built."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_MANIFEST_BYTES:
        raise ManifestError([f"{source}:1: {size} bytes, limit {MAX_MANIFEST_BYTES}"])
    depth = aliases = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_YAML_DEPTH:
                raise ManifestError(
                    [
                        f"{source}:{event.start_mark.line + 1}: {what} nests deeper than "
                        f"{MAX_YAML_DEPTH} levels (refused)"
                    ]
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_YAML_ALIASES:
                raise ManifestError(
                    [
                        f"{source}:{event.start_mark.line + 1}: more than {MAX_YAML_ALIASES} "
                        "YAML aliases (*name) (refused: alias bombs)"
                    ]
                )
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    budget = [MAX_YAML_NODES]

    def count(n) -> None:
        stack = [n]
        while stack:
            cur = stack.pop()
            budget[0] -= 1
            if budget[0] < 0:
                raise ManifestError(
                    [
                        f"{source}:1: {what} expands to more than {MAX_YAML_NODES} values "
                        "through aliases (refused: billion-laughs)"
                    ]
                )
            if isinstance(cur, yaml.MappingNode):
                for k, v in cur.value:
                    stack += (k, v)
            elif isinstance(cur, yaml.SequenceNode):
                stack += cur.value

    if node is not None:
        count(node)
    return node, yaml.safe_load(text)


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
    outbound: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)
    source: str = ""  # the file it was read from, for errors found later (skill.yaml)
    lines: dict = field(default_factory=dict, repr=False)  # JSON path -> line in ``source``

    def where(self, *path) -> str:
        """``file:line`` of a field (``where("slots", "room", "entity")``)."""
        line = self.lines.get(tuple(path)) or self.lines.get(tuple(path[:-1])) or 1
        return f"{self.source or 'skill.yaml'}:{line}"

    @property
    def handlers(self) -> list[str]:
        names = {r["handler"] for r in self.intents.values() if "handler" in r}
        media = self.raw.get("media") or {}
        if media.get("handler"):
            names.add(media["handler"])
        names |= {e["handler"] for e in (self.raw.get("events") or {}).values() if "handler" in e}
        return sorted(names)


def parse_manifest(text: str, source: str = "skill.yaml") -> Manifest:
    """Validate manifest text; errors name ``file:line``, the field and the rule broken."""
    try:
        node, data = safe_yaml(text, source, "the manifest")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        raise ManifestError(
            [f"{source}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}"]
        ) from exc
    if not isinstance(data, dict) or node is None:
        raise ManifestError([f"{source}:1: the manifest must be a mapping of fields"])
    for key, limit in (("intents", 1000), ("triggers", 1000), ("slots", 200)):
        if isinstance(data.get(key), dict | list) and len(data[key]) > limit:
            raise ManifestError(
                [f"{source}:1: {key}: {len(data[key])} entries, limit {limit} (refused)"]
            )
    lines = _lines(node)
    problems = []
    validator = SchemaValidator(schema())  # jsonschema's rules, without its import cost
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
        elif err.validator == "oneOf" and len(path) == 4 and path[2] == "notify":
            msg = (
                "a follow-up needs exactly one recipient: 'user' (a staff id) or 'group' "
                "(an open conversation id), each a template such as '{{ api.assignee }}'"
            )
        elif err.validator == "required" and len(path) == 4 and path[2] == "notify":
            msg = "a follow-up needs 'text' (the message, a template)"
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
        problems += _check_slots(data, lines, source)
        problems += _check_patterns(data, lines, source)
        problems += _check_outbound(data, lines, source)
        problems += _check_notify(data, lines, source)
        need = data.get("min_dingskill")
        if need and version_tuple(need) > version_tuple(__version__):
            problems.append(
                f"{source}:{lines.get(('min_dingskill',), 1)}: min_dingskill: needs dingskill {need}, this is {__version__}"
            )
    if problems:
        raise ManifestError(problems)
    known = {f for f in Manifest.__dataclass_fields__ if f not in ("raw", "source", "lines")}
    return Manifest(
        **{k: v for k, v in data.items() if k in known}, raw=data, source=source, lines=lines
    )


def _check_slots(data: dict, lines: dict, source: str) -> list[str]:
    """``type: entity`` names its entity; flows keep only declared slots."""
    from ..datasets.annotations import ENTITY_TYPE

    out = []
    for name, spec in data.get("slots", {}).items():
        where = lines.get(("slots", name, "type")) or lines.get(("slots", name), 1)
        if spec.get("type") == "entity":
            entity = spec.get("entity")
            if not entity:
                out.append(
                    f"{source}:{where}: slots.{name}: a slot of type 'entity' needs 'entity: "
                    "NAME', the entity type the data annotates (e.g. [西湖厅](room) -> room)"
                )
            elif not ENTITY_TYPE.match(entity):
                out.append(
                    f"{source}:{lines.get(('slots', name, 'entity'), where)}: slots.{name}.entity:"
                    f" {entity!r} is not an entity type name (letters, digits, _ - .)"
                )
        elif "entity" in spec:
            out.append(
                f"{source}:{lines.get(('slots', name, 'entity'), where)}: slots.{name}.entity: "
                "only a slot of 'type: entity' names an entity; add 'type: entity' or remove it"
            )
    for iname, resp in data["intents"].items():
        for j, slot in enumerate(resp.get("flow", {}).get("optional", [])):
            if slot not in data.get("slots", {}):
                line = lines.get(("intents", iname, "flow", "optional", j), 1)
                out.append(
                    f"{source}:{line}: intents.{iname}.flow.optional.{j}: slot {slot!r} is not "
                    "declared under 'slots'"
                )
    return out


def _check_patterns(data: dict, lines: dict, source: str) -> list[str]:
    """Trigger and slot patterns must run on the linear-time engine."""
    from ..nlu.safe_regex import UnsafePattern, compile_safe

    out = []
    found = [
        (("triggers", i, "patterns", j), p)
        for i, trig in enumerate(data.get("triggers", []))
        for j, p in enumerate(trig.get("patterns", []))
    ] + [
        (("slots", name, "pattern"), spec["pattern"])
        for name, spec in data.get("slots", {}).items()
        if "pattern" in spec
    ]
    for path, pattern in found:
        try:
            compile_safe(pattern)
        except UnsafePattern as exc:
            where = lines.get(path) or lines.get(path[:-1]) or 1
            out.append(f"{source}:{where}: {'.'.join(map(str, path))}: {exc}")
    return out


def _check_outbound(data: dict, lines: dict, source: str) -> list[str]:
    """HTTP actions need the http.outbound permission, and the hosts their URLs name (or the
    default of an operator-set base ``${NAME:-https://host}``) must be declared."""
    from .outbound import host_allowed

    out = []
    declared = data.get("outbound", [])
    for name, resp in data["intents"].items():
        http = resp.get("http")
        if not http:
            continue
        where = lines.get(("intents", name, "http", "url"), 1)
        if "http.outbound" not in data.get("permissions", []):
            out.append(
                f"{source}:{where}: intents.{name}.http: an HTTP action needs the "
                "'http.outbound' permission and the hosts it calls under 'outbound'"
            )
            continue
        m = re.match(r"^(?:\$\{[A-Z_][A-Z0-9_]*:-)?https?://([^/:?#}\[]+|\[[^\]]+\])", http["url"])
        host = m[1] if m else None
        if host and "{" not in host and not host_allowed(host, declared):
            out.append(
                f"{source}:{where}: intents.{name}.http.url: host {host!r} is not declared "
                f"under 'outbound' ({', '.join(declared) or 'none declared'})"
            )
    return out


def _check_notify(data: dict, lines: dict, source: str) -> list[str]:
    """Declared follow-ups (``notify``) need ``qyapi_robot_sendmsg``, come from template /
    HTTP-action responses (a handler returns its own), and their templates must compile."""
    from .errors import TemplateError
    from .notify import PERMISSION, TARGETS
    from .templates import compile_template

    out = []
    for name, resp in data["intents"].items():
        items = resp.get("notify")
        if not items:
            continue
        where = lines.get(("intents", name, "notify"), 1)
        if PERMISSION not in data.get("permissions", []):
            out.append(
                f"{source}:{where}: intents.{name}.notify: follow-up messages need the "
                f"'{PERMISSION}' permission: add it to 'permissions' (the operator sees it at "
                "install), or remove 'notify'"
            )
        if "handler" in resp:
            out.append(
                f"{source}:{where}: intents.{name}.notify: a handler returns its own follow-ups "
                "({'text': ..., 'notify': [...]}); remove 'notify' here or the handler"
            )
        for i, item in enumerate(items):
            for key in (*TARGETS, "text", "title"):
                if key not in item:
                    continue
                try:
                    compile_template(item[key], "target" if key in TARGETS else "text")
                except TemplateError as exc:
                    path = ("intents", name, "notify", i, key)
                    out.append(
                        f"{source}:{lines.get(path, where)}: {'.'.join(map(str, path))}: {exc}"
                    )
    return out


def load_manifest(path) -> Manifest:
    path = Path(path)
    if path.is_dir():
        path = path / "skill.yaml"
    if not path.exists():
        raise ManifestError([f"{path}: not found (a skill folder holds skill.yaml)"])
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(
            [f"{path}:1: {path.stat().st_size} bytes, limit {MAX_MANIFEST_BYTES} (refused)"]
        )
    return parse_manifest(path.read_text(encoding="utf-8"), str(path))
