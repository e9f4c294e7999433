"""Python handlers (``handlers.py`` beside ``skill.yaml``) for what templates cannot say.

A handler is ``def name(message, slots, context) -> str | dict``: a string is the reply
text; a dict may hold ``text``, ``format``, ``title``, ``card``. Handler code runs only when
the skill is trusted: a source folder its author is developing, or an installed package that
was signed by a trusted key or installed with ``--trust`` (the installer refuses the rest).
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from .errors import SkillError

__all__ = ["load_handlers"]


def load_handlers(skill_dir: Path, names: list[str], trusted: bool) -> dict:
    """Import ``handlers.py`` of a skill and return the named functions."""
    if not names:
        return {}
    path = Path(skill_dir) / "handlers.py"
    if not path.exists():
        raise SkillError(
            f"{skill_dir}/skill.yaml names handler(s) {names} but handlers.py is missing"
        )
    if not trusted:
        raise SkillError(
            f"{path}: handler code runs only for trusted skills (signed by a trusted key or installed with --trust)"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"dingskill_handlers_{digest}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - report the author's import error
        raise SkillError(f"{path}: importing handlers failed: {type(exc).__name__}: {exc}") from exc
    out = {}
    for name in names:
        fn = getattr(module, name, None)
        if not callable(fn):
            raise SkillError(f"{path}: no function {name!r} (named in skill.yaml)")
        out[name] = fn
    return out
