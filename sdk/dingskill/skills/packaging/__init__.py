"""Skill packages: deterministic export with RECORD, ed25519 signatures, safe verification
and the installed home (install / upgrade / rollback / remove / verify)."""

from .errors import (
    PackageError,
    PolicyError,
    RecordMismatchError,
    SignatureError,
    UnsafeArchiveError,
)
from .export import export_skill, package_name
from .home import InstalledSkill, SkillHome, default_home
from .signing import generate_keys
from .verify import Limits

__all__ = [
    "InstalledSkill",
    "Limits",
    "PackageError",
    "PolicyError",
    "RecordMismatchError",
    "SignatureError",
    "SkillHome",
    "UnsafeArchiveError",
    "default_home",
    "export_skill",
    "generate_keys",
    "package_name",
]
