"""A tamper-evident audit log: JSON Lines where each record carries the hash of the previous.

Each stored line is ``{"seq", "prev", "hash", "record"}`` (or, with a keyring, ``"sealed"``
instead of ``"record"``: the record encrypted with AES-256-GCM). ``hash`` is the SHA-256 of
``prev`` and the canonical JSON of the plaintext record, so :func:`verify_chain` finds an
altered record (hash mismatch), a removed one (sequence gap / broken link) and a reordered
one (sequence going back), and key rotation does not change the chain.

Retention: :meth:`AuditChain.enforce_retention` drops records older than the retention
period and writes an anchor (``<file>.anchor``: seq and hash of the last dropped record), so
the shortened log still verifies from its first record on.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .crypto import CryptoError, Keyring

__all__ = ["GENESIS", "AuditChain", "ChainProblem", "verify_chain"]

GENESIS = "0" * 64
DAY_MS = 86_400_000


def _canonical(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _link(prev: str, record: dict) -> str:
    return hashlib.sha256(prev.encode() + b"\n" + _canonical(record)).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    """One finding of :func:`verify_chain`."""

    line: int
    kind: str  # altered | removed | reordered | malformed | undecryptable
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.message}"


class AuditChain:
    """Append-only, hash-chained JSON Lines audit file (safe across processes)."""

    def __init__(
        self,
        path: str | os.PathLike,
        keyring: Keyring | None = None,
        retention_days: float = 180,
    ) -> None:
        if retention_days <= 0:
            raise ValueError(f"audit retention_days must be > 0, got {retention_days}")
        self.path = Path(path)
        self.keyring = keyring
        self.retention_days = retention_days
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def anchor_path(self) -> Path:
        return self.path.with_name(self.path.name + ".anchor")

    def _read_anchor(self) -> tuple[int, str]:
        try:
            data = json.loads(self.anchor_path.read_text())
            return int(data["seq"]), str(data["hash"])
        except FileNotFoundError:
            return 0, GENESIS

    def _last(self) -> tuple[int, str]:
        seq, prev = self._read_anchor()
        if self.path.exists():
            with self.path.open("rb") as fh:
                last = b""
                for line in fh:
                    if line.strip():
                        last = line
            if last:
                entry = json.loads(last)
                seq, prev = int(entry["seq"]), str(entry["hash"])
        return seq, prev

    def append(self, record: dict) -> dict:
        """Append one record (adds ``ts_ms`` if missing); returns the stored entry."""
        return self.append_many([record])[0]

    def append_many(self, records: list[dict]) -> list[dict]:
        """Append records in one locked write and one fsync; returns the stored entries."""
        if not records:
            return []
        entries = []
        with open(self.path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                seq, prev = self._last_cached(fh)
                out = []
                for record in records:
                    record = dict(record)
                    record.setdefault("ts_ms", int(time.time() * 1000))
                    seq += 1
                    entry: dict = {"seq": seq, "prev": prev, "hash": _link(prev, record)}
                    if self.keyring is not None:
                        entry["sealed"] = self.keyring.encrypt_text(
                            _canonical(record).decode(), aad=f"audit:{seq}"
                        )
                    else:
                        entry["record"] = record
                    prev = entry["hash"]
                    out.append(_canonical(entry) + b"\n")
                    entries.append(entry)
                fh.write(b"".join(out))
                fh.flush()
                os.fsync(fh.fileno())
                self._tail = (fh.tell(), seq, prev)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return entries

    def _last_cached(self, fh) -> tuple[int, str]:
        """(seq, hash) of the last entry; cheap when this object wrote the file's tail."""
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        tail = getattr(self, "_tail", None)
        if tail is not None and tail[0] == size:
            return tail[1], tail[2]
        return self._last()

    def _open(self, entry: dict) -> dict:
        if "sealed" in entry:
            if self.keyring is None:
                raise CryptoError("audit record is encrypted and no keyring was given")
            return json.loads(
                self.keyring.decrypt_text(entry["sealed"], aad=f"audit:{entry['seq']}")
            )
        return entry["record"]

    def records(self) -> Iterator[dict]:
        """The plaintext records, oldest first."""
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield self._open(json.loads(line))

    def verify(self) -> list[ChainProblem]:
        return verify_chain(self.path, self.keyring)

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Drop records older than the retention period; returns how many were dropped."""
        now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        cutoff = now_ms - int(self.retention_days * DAY_MS)
        if not self.path.exists():
            return 0
        with open(self.path, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                lines = [ln for ln in fh.read().splitlines() if ln.strip()]
                keep_from = 0
                for i, line in enumerate(lines):
                    entry = json.loads(line)
                    if int(self._open(entry).get("ts_ms", now_ms)) >= cutoff:
                        break
                    keep_from = i + 1
                if keep_from == 0:
                    return 0
                dropped = json.loads(lines[keep_from - 1])
                tmp_anchor = self.anchor_path.with_name(self.anchor_path.name + ".tmp")
                tmp_anchor.write_text(json.dumps({"seq": dropped["seq"], "hash": dropped["hash"]}))
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_bytes(b"".join(ln + b"\n" for ln in lines[keep_from:]))
                os.replace(tmp_anchor, self.anchor_path)
                os.replace(tmp, self.path)
                return keep_from
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def reencrypt(self, keyring: Keyring) -> int:
        """Re-seal every record with ``keyring``'s active key (key rotation)."""
        if not self.path.exists():
            return 0
        out, n = [], 0
        with open(self.path, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                for line in fh.read().splitlines():
                    if not line.strip():
                        continue
                    entry = json.loads(line)
                    record = self._open(entry)
                    entry.pop("record", None)
                    entry["sealed"] = keyring.encrypt_text(
                        _canonical(record).decode(), aad=f"audit:{entry['seq']}"
                    )
                    out.append(_canonical(entry) + b"\n")
                    n += 1
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_bytes(b"".join(out))
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        self.keyring = keyring
        return n


def verify_chain(path: str | os.PathLike, keyring: Keyring | None = None) -> list[ChainProblem]:
    """Check every link of an audit file; an empty list means intact."""
    chain = AuditChain(path, keyring)
    seq, prev = chain._read_anchor()
    problems: list[ChainProblem] = []
    if not chain.path.exists():
        return problems
    with chain.path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                eseq, eprev, ehash = int(entry["seq"]), str(entry["prev"]), str(entry["hash"])
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(ChainProblem(lineno, "malformed", f"not an audit entry: {exc}"))
                continue
            try:
                record = chain._open(entry)
            except (CryptoError, ValueError) as exc:
                problems.append(ChainProblem(lineno, "undecryptable", str(exc)))
                seq, prev = eseq, ehash
                continue
            if eseq <= seq:
                problems.append(ChainProblem(lineno, "reordered", f"seq {eseq} after seq {seq}"))
            elif eseq != seq + 1:
                problems.append(ChainProblem(lineno, "removed", f"seq jumps from {seq} to {eseq}"))
            elif eprev != prev:
                problems.append(
                    ChainProblem(
                        lineno, "removed", f"seq {eseq} does not link to the record before"
                    )
                )
            if _link(eprev, record) != ehash:
                problems.append(
                    ChainProblem(lineno, "altered", f"seq {eseq}: content does not match its hash")
                )
            seq, prev = eseq, ehash
    return problems
