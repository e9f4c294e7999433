"""dingskill.nlu: normalisation, features, rules, the intent classifier and the entity
extractor."""

from __future__ import annotations

from .persistence import UnsafeModelError

__all__ = [
    "Decision",
    "EntityExtractor",
    "EntityModelError",
    "IntentClassifier",
    "RuleSet",
    "UnsafeModelError",
    "find_system_entities",
    "normalize_text",
]


def __getattr__(name: str):
    if name in ("IntentClassifier", "Decision"):
        from . import classifier

        return getattr(classifier, name)
    if name in ("EntityExtractor", "EntityModelError"):
        from . import entity_extractor

        return getattr(entity_extractor, name)
    if name == "RuleSet":
        from .rules import RuleSet

        return RuleSet
    if name == "find_system_entities":
        from .system_entities import find_system_entities

        return find_system_entities
    if name == "normalize_text":
        from .normalize import normalize_text

        return normalize_text
    raise AttributeError(f"module 'dingskill.nlu' has no attribute {name!r}")
