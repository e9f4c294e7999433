"""Errors of the skills layer."""

from __future__ import annotations

__all__ = ["SkillError", "ManifestError", "TemplateError"]


class SkillError(ValueError):
    """A skill cannot be loaded, trained or run as written."""


class ManifestError(SkillError):
    """``skill.yaml`` breaks the schema; ``problems`` lists ``file:line: field: message``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid skill manifest:\n  " + "\n  ".join(problems))


class TemplateError(SkillError):
    """A response template does not compile or fails to render."""
