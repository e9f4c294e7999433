"""Deterministic skill archives with a RECORD of SHA-256 digests (as wheels have)."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile

__all__ = ["record_digest", "make_record", "parse_record", "write_archive", "FIXED_DATE"]

FIXED_DATE = (1980, 1, 1, 0, 0, 0)
RECORD = "RECORD"
SIGNATURE = "SIGNATURE"


def record_digest(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_record(files: dict[str, bytes]) -> bytes:
    lines = [f"{name},{record_digest(data)},{len(data)}" for name, data in sorted(files.items())]
    lines.append(f"{RECORD},,")
    return ("\n".join(lines) + "\n").encode()


def parse_record(data: bytes) -> dict[str, tuple[str, int]]:
    """RECORD bytes -> {path: (digest, size)}; raises ValueError naming the bad line."""
    out: dict[str, tuple[str, int]] = {}
    for i, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.rsplit(",", 2)
        if len(parts) != 3:
            raise ValueError(f"RECORD line {i}: expected 'path,sha256=...,size'")
        path, digest, size = parts
        if path == RECORD:
            continue
        if not digest.startswith("sha256=") or not size.isdigit():
            raise ValueError(f"RECORD line {i}: bad digest or size for {path!r}")
        if path in out:
            raise ValueError(f"RECORD line {i}: {path!r} listed twice")
        out[path] = (digest, int(size))
    return out


def write_archive(files: dict[str, bytes], signature: bytes | None = None) -> bytes:
    """Zip ``files`` + RECORD (+ SIGNATURE): sorted members, fixed dates and permissions."""
    record = make_record(files)
    members = dict(sorted(files.items()))
    members[RECORD] = record
    if signature is not None:
        members[SIGNATURE] = signature
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = (0o100644 & 0xFFFF) << 16
            info.create_system = 3
            zf.writestr(info, data, compresslevel=9)
    return buf.getvalue()
