"""Errors raised while exporting, verifying or installing skill packages."""

from __future__ import annotations

__all__ = [
    "PackageError",
    "UnsafeArchiveError",
    "RecordMismatchError",
    "SignatureError",
    "PolicyError",
]


class PackageError(ValueError):
    """A package is refused; the message names the member, the field or the limit."""


class UnsafeArchiveError(PackageError):
    """Path escapes, links, duplicate names, oversized or high-ratio members."""


class RecordMismatchError(PackageError):
    """A member was altered, added or is missing with respect to RECORD."""


class SignatureError(PackageError):
    """A signature is missing where required, malformed, untrusted or does not verify."""


class PolicyError(PackageError):
    """The operator's policy refuses the package (handlers without trust, version mismatch...)."""
