"""Reading an untrusted ``.skill`` archive safely and checking it before install.

Refused: path escapes (``..``, absolute paths, backslashes, drive letters), links, duplicate
names (also names equal ignoring case or Unicode normalisation: ``skill.yaml`` and
``SKILL.YAML``, NFC and NFD), too many members, oversized or high-ratio members (zip bombs:
sizes are counted while reading, header sizes are not trusted), a RECORD mismatch, a bad manifest, an unsupported
``min_dingskill``, a model that is not the safe format, and signatures that do not verify.
"""

from __future__ import annotations

import io
import stat
import unicodedata
import zipfile
from dataclasses import dataclass, field
from enum import Enum

from ...nlu import IntentClassifier
from ..errors import ManifestError
from ..manifest import Manifest, parse_manifest
from .archive import RECORD, SIGNATURE, parse_record, record_digest
from .errors import (
    PackageError,
    PolicyError,
    RecordMismatchError,
    SignatureError,
    UnsafeArchiveError,
)
from .signing import verify_signature

__all__ = ["Limits", "VerifiedPackage", "read_archive", "verify_members"]

MODEL = "model.dsm"
ENTITY_MODEL = "entities.dse"


@dataclass(frozen=True)
class Limits:
    max_package_bytes: int = 100 * 2**20
    max_members: int = 1000
    max_member_bytes: int = 64 * 2**20
    max_total_bytes: int = 256 * 2**20
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 2**20  # the ratio check applies to members larger than this


class SignatureKind(str, Enum):
    UNSIGNED = "unsigned"  # no SIGNATURE member
    TRUSTED = "trusted"  # signed by a key the operator trusts
    UNTRUSTED = "untrusted"  # signed by a key the operator does not know


@dataclass(frozen=True)
class SignatureState:
    """A package's signature state; stored as ``"trusted:<key id>"`` / ``"unsigned"``."""

    kind: SignatureKind = SignatureKind.UNSIGNED
    key_id: str | None = None

    @classmethod
    def parse(cls, text: str) -> SignatureState:
        kind, _, kid = text.partition(":")
        return cls(SignatureKind(kind), kid or None)

    @property
    def trusted(self) -> bool:
        return self.kind is SignatureKind.TRUSTED

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.key_id}" if self.key_id else self.kind.value


@dataclass
class VerifiedPackage:
    manifest: Manifest
    files: dict[str, bytes]
    signature: SignatureState = field(default_factory=SignatureState)
    has_handlers: bool = False
    notes: list[str] = field(default_factory=list)


def _check_name(name: str) -> None:
    if not name or "\x00" in name:
        raise UnsafeArchiveError(f"member {name!r}: empty or NUL in name")
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"member {name!r}: absolute path")
    if "\\" in name:
        raise UnsafeArchiveError(f"member {name!r}: backslash in path")
    if any(part in ("..", ".") for part in name.split("/")):
        raise UnsafeArchiveError(f"member {name!r}: path escapes the package ('..')")


def _fold_name(name: str) -> str:
    """A member name as a case-insensitive, normalising file system sees it."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFKD", name).casefold())


def read_archive(data: bytes, limits: Limits | None = None) -> dict[str, bytes]:
    """Members of an untrusted zip, enforcing every safety limit."""
    limits = limits or Limits()
    if len(data) > limits.max_package_bytes:
        raise UnsafeArchiveError(f"package is {len(data)} bytes, limit {limits.max_package_bytes}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise PackageError(f"not a skill package (zip): {exc}") from exc
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise UnsafeArchiveError(f"package has {len(infos)} members, limit {limits.max_members}")
    out: dict[str, bytes] = {}
    seen: dict[str, str] = {}
    total = 0
    for info in infos:
        name = info.filename
        _check_name(name)
        mode = (info.external_attr >> 16) & 0xFFFF
        if stat.S_ISLNK(mode):
            raise UnsafeArchiveError(f"member {name!r}: symbolic links are not allowed")
        if name.endswith("/"):
            continue
        if name in out:
            raise UnsafeArchiveError(f"member {name!r}: appears twice")
        # on a case-insensitive or normalising file system (macOS, Windows) two such names
        # are one file: which one wins would be the file system's choice, not the signer's
        folded = _fold_name(name)
        if folded in seen:
            raise UnsafeArchiveError(
                f"member {name!r}: collides with {seen[folded]!r} (same name ignoring case / "
                "Unicode normalisation)"
            )
        seen[folded] = name
        chunks, size = [], 0
        try:
            with zf.open(info) as fh:
                while chunk := fh.read(65536):
                    size += len(chunk)
                    if size > limits.max_member_bytes:
                        raise UnsafeArchiveError(
                            f"member {name!r}: larger than {limits.max_member_bytes} bytes"
                        )
                    if (
                        size > limits.ratio_floor_bytes
                        and size / max(info.compress_size, 1) > limits.max_ratio
                    ):
                        raise UnsafeArchiveError(
                            f"member {name!r}: compression ratio above {limits.max_ratio:g} (zip bomb?)"
                        )
                    chunks.append(chunk)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise PackageError(f"member {name!r}: corrupt ({exc})") from exc
        total += size
        if total > limits.max_total_bytes:
            raise UnsafeArchiveError(f"package unpacks to more than {limits.max_total_bytes} bytes")
        out[name] = b"".join(chunks)
    folders = {"/".join(n.split("/")[:i]) for n in out for i in range(1, n.count("/") + 1)}
    both = sorted(folders & set(out))
    if both:
        raise UnsafeArchiveError(f"member {both[0]!r}: is both a file and a folder")
    return out


def verify_members(
    members: dict[str, bytes],
    trusted_keys: dict[str, str],
    require_signature: bool = False,
    trust: bool = False,
) -> VerifiedPackage:
    """RECORD, manifest, model, signature and policy checks of an archive's members."""
    if RECORD not in members:
        raise RecordMismatchError("RECORD is missing")
    try:
        record = parse_record(members[RECORD])
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordMismatchError(str(exc)) from exc
    files = {k: v for k, v in members.items() if k not in (RECORD, SIGNATURE)}
    added = sorted(set(files) - set(record))
    missing = sorted(set(record) - set(files))
    if added:
        raise RecordMismatchError(f"member {added[0]!r} is not in RECORD (added after export)")
    if missing:
        raise RecordMismatchError(f"member {missing[0]!r} is listed in RECORD but missing")
    for name, (digest, size) in sorted(record.items()):
        data = files[name]
        if len(data) != size or record_digest(data) != digest:
            raise RecordMismatchError(f"member {name!r} does not match its RECORD digest (altered)")
    if "skill.yaml" not in files:
        raise PackageError("skill.yaml is missing")
    try:
        manifest = parse_manifest(files["skill.yaml"].decode("utf-8"), "skill.yaml (in package)")
    except ManifestError as exc:
        raise PackageError(str(exc)) from exc
    except UnicodeDecodeError as exc:
        raise PackageError("skill.yaml is not UTF-8") from exc
    if MODEL not in files:
        raise PackageError(f"{MODEL} is missing (export trains and adds it)")
    try:
        IntentClassifier.from_bytes(files[MODEL])
    except Exception as exc:  # noqa: BLE001 - anything but the safe format is refused
        raise PackageError(
            f"{MODEL}: not the safe model format ({type(exc).__name__}: {exc})"
        ) from exc
    if ENTITY_MODEL in files:
        from ...nlu.entity_extractor import EntityExtractor

        try:
            EntityExtractor.from_bytes(files[ENTITY_MODEL], ENTITY_MODEL)
        except Exception as exc:  # noqa: BLE001 - anything but the safe format is refused
            raise PackageError(
                f"{ENTITY_MODEL}: not a usable entity model ({type(exc).__name__}: {exc})"
            ) from exc
    state = SignatureState()
    if SIGNATURE in members:
        try:
            kid = verify_signature(members[RECORD], members[SIGNATURE], trusted_keys)
            state = SignatureState(SignatureKind.TRUSTED, kid)
        except SignatureError as exc:
            if "not trusted" in str(exc) and not require_signature:
                import json

                kid = json.loads(members[SIGNATURE]).get("key_id")
                state = SignatureState(SignatureKind.UNTRUSTED, kid)
            else:
                raise
    if require_signature and not state.trusted:
        raise PolicyError(f"the operator requires signed packages; this one is {state.kind.value}")
    has_handlers = "handlers.py" in files or bool(manifest.handlers)
    if has_handlers and not (state.trusted or trust):
        raise PolicyError(
            "the package contains Python handlers (handlers.py): install it only if signed by a "
            "trusted key, or pass --trust to run its code"
        )
    pkg = VerifiedPackage(manifest, files, state, has_handlers)
    return pkg
