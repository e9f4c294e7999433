"""Skills: manifest, responses (templates, HTTP API, handlers), slots, multi-turn, Engine."""

from .conversation import Message, Reply, context_key
from .engine import Engine
from .errors import ManifestError, SkillError, TemplateError
from .manifest import Manifest, load_manifest, schema
from .skill import Skill

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
