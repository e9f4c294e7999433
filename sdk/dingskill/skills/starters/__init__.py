"""Skill starters for ``dingskill new NAME --template faq|form|api-lookup`` (zh and en).

Each starter is one YAML file here (``<template>-<lang>.yaml``) holding the files of a skill
folder that trains, chats and exports as it is; ``__ID__``, ``__NAME__`` and ``__AUTHOR__``
are filled in. Only plain text substitution: nothing in a starter is executed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from ..errors import SkillError

__all__ = ["TEMPLATES", "LANGUAGES", "Starter", "new_skill", "starters"]

TEMPLATES = ("faq", "form", "api-lookup")
LANGUAGES = ("zh", "en")
_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")
_ID = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9][a-z0-9-]*){2,}$")


@dataclass(frozen=True)
class Starter:
    template: str
    language: str
    description: str
    files: dict[str, str]


def _load(template: str, language: str) -> Starter:
    text = resources.files(__package__).joinpath(f"{template}-{language}.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    return Starter(template, language, data["description"], dict(data["files"]))


def starters() -> list[Starter]:
    """Every template in every language."""
    return [_load(t, lang) for t in TEMPLATES for lang in LANGUAGES]


def new_skill(
    name: str,
    template: str = "faq",
    language: str = "zh",
    directory=".",
    skill_id: str | None = None,
    display_name: str | None = None,
    author: str = "",
) -> Path:
    """Write a new skill folder ``DIRECTORY/NAME`` from a starter; returns its path.

    Refuses to overwrite an existing folder."""
    if not _NAME.match(name):
        raise SkillError(
            f"skill name {name!r}: lowercase letters, digits and '-', starting with a letter"
        )
    if template not in TEMPLATES:
        raise SkillError(f"--template {template!r}: one of {', '.join(TEMPLATES)}")
    if language not in LANGUAGES:
        raise SkillError(f"--lang {language!r}: one of {', '.join(LANGUAGES)}")
    sid = skill_id or f"com.example.{name}"
    if not _ID.match(sid):
        raise SkillError(f"--id {sid!r}: a reverse-DNS id such as com.example.{name}")
    target = Path(directory) / name
    if target.exists():
        raise SkillError(f"{target} already exists; choose another name or folder")
    starter = _load(template, language)
    values = {
        "__ID__": sid,
        "__NAME__": display_name or name,
        "__AUTHOR__": author or "dingskill user",
    }
    tmp = target.with_name(f".{name}.new")
    for rel, content in starter.files.items():
        for k, v in values.items():
            content = content.replace(k, v)
        dest = tmp / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(content, encoding="utf-8")
    tmp.rename(target)
    return target
