"""Skills: manifest, responses (templates, HTTP API, handlers), slots, multi-turn, Engine.

Names are imported on first use, so that the runtime and the CLI load only what they need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "Engine",
    "Manifest",
    "ManifestError",
    "Message",
    "Reply",
    "Skill",
    "SkillError",
    "TemplateError",
    "context_key",
    "load_manifest",
    "schema",
]

_LAZY = {
    "Engine": ".engine",
    "Manifest": ".manifest",
    "ManifestError": ".errors",
    "Message": ".conversation",
    "Reply": ".conversation",
    "Skill": ".skill",
    "SkillError": ".errors",
    "TemplateError": ".errors",
    "context_key": ".conversation",
    "load_manifest": ".manifest",
    "schema": ".manifest",
}

if TYPE_CHECKING:  # pragma: no cover
    from .conversation import Message, Reply, context_key
    from .engine import Engine
    from .errors import ManifestError, SkillError, TemplateError
    from .manifest import Manifest, load_manifest, schema
    from .skill import Skill


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'dingskill.skills' has no attribute {name!r}")
