"""A tamper-evident audit log: JSON Lines chained with a keyed MAC, and a head kept outside.

Each stored line is ``{"seq", "prev", "mac", "kid", "record"}`` (or ``"sealed"`` instead of
``"record"`` in an encrypted log: the record sealed with AES-256-GCM). ``mac`` is
HMAC-SHA256, under a key derived from keyring key ``kid``, of the sequence number, the
previous entry's ``mac``, whether the record is sealed, and the record's canonical JSON. So
rewriting a record and recomputing every later link needs the key (a plain hash chain anyone
can recompute). The MAC key comes from the data keyring when one is configured, else from a
key file created at the first write beside the log (``.<name>.mac-key``, mode 0600; keep a
copy elsewhere: a log whose key is lost can no longer be verified).

The head (``<file>.head``: last seq and mac, whether the log is encrypted, itself MACed; one
JSON object padded to one disk sector, overwritten in place) is written after every append,
so removing the last records, emptying the file or swapping it for an older copy is found:
the file no longer reaches the head. Retention writes a MACed anchor (``<file>.anchor``) for
the records it drops; an anchor someone wrote to match a cut head does not verify. In an
encrypted log a plaintext record is refused.

What a keyed chain cannot stop: someone holding the MAC key (or root on the machine) can
rewrite everything consistently; ship the log, or its heads, to another machine to guard
against that (see docs/security.md).
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .crypto import CryptoError, Keyring

__all__ = ["GENESIS", "AuditChain", "ChainProblem", "verify_chain", "verify_copy"]

GENESIS = "0" * 64
DAY_MS = 86_400_000
PURPOSE = "dingskill audit chain v2"


def _canonical(record: dict) -> bytes:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def _mac_bytes(keyed, seq: int, prev: str, sealed: bool, canonical: bytes) -> str:
    """The MAC of a record given its canonical JSON; ``keyed`` is ``hmac.new(key,
    digestmod=hashlib.sha256)``, copied (the key's padding is hashed once per key, not per
    record)."""
    h = keyed.copy()
    h.update(f"{seq}\n{prev}\n{'sealed' if sealed else 'plain'}\n".encode())
    h.update(canonical)
    return h.hexdigest()


def _mac(key: bytes, seq: int, prev: str, sealed: bool, record: dict) -> str:
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    return _mac_bytes(keyed, seq, prev, sealed, _canonical(record))


_jstr = json.encoder.encode_basestring  # a str as json.dumps(ensure_ascii=False) writes it


def _entry_line(seq: int, prev: str, mac: str, kid: str, field: str, body: bytes) -> bytes:
    """``_canonical(entry) + b"\\n"`` of an entry whose ``record`` (or ``sealed``) field has the
    canonical JSON ``body``, without serialising the record again (keys in sorted order:
    kid, mac, prev, record | sealed, seq)."""
    return (
        f'{{"kid":{_jstr(kid)},"mac":{_jstr(mac)},"prev":{_jstr(prev)},"{field}":'.encode()
        + body
        + f',"seq":{seq}}}\n'.encode()
    )


def _tag(key: bytes, *parts) -> str:
    return hmac.new(key, "\n".join(map(str, parts)).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    """One finding of :func:`verify_chain`."""

    line: int
    kind: str  # altered | removed | reordered | malformed | undecryptable | truncated | plaintext | key
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.kind}: {self.message}"


def _write_durable(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


# The head file is one JSON object padded with spaces to HEAD_SIZE bytes: one disk sector,
# which a drive writes whole or not at all (PostgreSQL overwrites its pg_control in place,
# fsynced, on the same guarantee, keeping it under 512 bytes), so after the first write the
# head is overwritten in place and fdatasync'ed: no temporary file, rename and freed inode per
# append, and after a crash it is still the previous head or the new one, as with the rename.
HEAD_SIZE = 512


def _overwrite_in_place(path: Path, data: bytes) -> bool:
    """Overwrite the regular file ``path`` (one link, exactly ``len(data)`` bytes) from its
    start and fdatasync it; False, having written nothing, when it is not such a file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1 or st.st_size != len(data):
            return False
        if os.pwrite(fd, data, 0) != len(data):
            return False  # rewritten whole by the caller
        os.fdatasync(fd)
        return True
    finally:
        os.close(fd)


def _last_line(fh, block: int = 65536) -> bytes:
    """The last non-blank line of the binary file ``fh``, read backwards from its end (the
    chain is appended to by several processes: each append after another process's must
    find the tail without reading the whole file)."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    tail = b""
    while end > 0:
        start = max(0, end - block)
        fh.seek(start)
        tail = fh.read(end - start) + tail
        end = start
        lines = [ln for ln in tail.split(b"\n") if ln.strip()]
        if len(lines) > 1 or (lines and start == 0):
            return lines[-1]
    return b""


class AuditChain:
    """Append-only, MAC-chained JSON Lines audit file (safe across processes)."""

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
        self._signing_cache: tuple | None = None  # (ring, kid, key, keyed HMAC): _signing

    # -- keys and side files -----------------------------------------------------------------
    @property
    def anchor_path(self) -> Path:
        return self.path.with_name(self.path.name + ".anchor")

    @property
    def head_path(self) -> Path:
        return self.path.with_name(self.path.name + ".head")

    @property
    def mac_key_path(self) -> Path:
        return self.path.with_name(f".{self.path.name}.mac-key")

    def _local_ring(self, create: bool) -> Keyring | None:
        """The chain's own MAC key file (when no keyring is given), read again only when the
        file changes; created by the first append, which holds the chain's file lock (several
        processes may append to one chain)."""
        p = self.mac_key_path
        try:
            st = p.stat()
        except FileNotFoundError:
            if not create:
                return None
            ring = Keyring({"audit-1": os.urandom(32)}, "audit-1")
            ring.to_file(p)
            st = p.stat()
            self._ring_cache = ((st.st_ino, st.st_mtime_ns), ring)
            return ring
        stamp = (st.st_ino, st.st_mtime_ns)
        cached = getattr(self, "_ring_cache", None)
        if cached is None or cached[0] != stamp:
            cached = self._ring_cache = (stamp, Keyring.from_file(p))
        return cached[1]

    def _signing_key(self) -> tuple[str, bytes]:
        kid, key, _ = self._signing()
        return kid, key

    def _key(self, kid: str) -> bytes | None:
        for ring in (self.keyring, self._local_ring(create=False)):
            if ring is not None and ring.has_key(kid):
                return ring.derive(kid, PURPOSE)
        return None

    def _read_json(self, path: Path) -> dict | None:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None

    def _read_anchor(self) -> tuple[int, str]:
        data = self._read_json(self.anchor_path)
        if data is None:
            return 0, GENESIS
        return int(data["seq"]), str(data["mac"])

    def _write_head(self, seq: int, mac: str, sealed: bool) -> None:
        kid, key = self._signing_key()  # the append's own key (kept: no second derivation)
        head = {"seq": seq, "mac": mac, "sealed": sealed, "kid": kid}
        head["head_mac"] = _tag(key, "head", seq, mac, sealed)
        data = json.dumps(head).encode()
        if len(data) < HEAD_SIZE:
            data = data.ljust(HEAD_SIZE - 1) + b"\n"
            if _overwrite_in_place(self.head_path, data):
                return
        _write_durable(self.head_path, data)

    def _read_head(self, verify: bool = True) -> dict | None:
        """The head file, read again (up to 3 times) while it does not parse or (``verify``)
        its MAC does not verify: a head read while a writer overwrites it in place may be half
        old, half new. A head that stays wrong is returned as it is, for the caller to report
        (or its JSON error raised)."""
        for attempt in range(3):
            try:
                head = self._read_json(self.head_path)
            except ValueError:
                if attempt == 2:
                    raise
            else:
                if head is None or not verify or attempt == 2 or self._head_verifies(head):
                    return head
            time.sleep(0.005)
        return None  # not reached

    def _head_verifies(self, head: dict) -> bool:
        key = self._key(str(head.get("kid")))
        if not key:
            return False
        tag = _tag(key, "head", head.get("seq"), head.get("mac"), head.get("sealed"))
        return hmac.compare_digest(tag, str(head.get("head_mac")))

    def _signing(self) -> tuple[str, bytes, object]:
        """(kid, key, keyed HMAC) to sign with; the HKDF derivation and the keyed HMAC are
        kept while the keyring object and its active key stay the same."""
        ring = self.keyring or self._local_ring(create=True)
        kid = ring.active
        cached = self._signing_cache
        if cached is None or cached[0] is not ring or cached[1] != kid:
            key = ring.derive(kid, PURPOSE)
            cached = self._signing_cache = (ring, kid, key, hmac.new(key, digestmod=hashlib.sha256))
        return cached[1], cached[2], cached[3]

    # -- writing -----------------------------------------------------------------------------
    def _last(self) -> tuple[int, str]:
        seq, prev = self._read_anchor()
        if self.path.exists():
            with self.path.open("rb") as fh:
                last = _last_line(fh)
            if last:
                entry = json.loads(last)
                seq, prev = int(entry["seq"]), str(entry["mac"])
        return seq, prev

    def append(self, record: dict) -> dict:
        """Append one record (adds ``ts_ms`` if missing); returns the stored entry."""
        return self.append_many([record])[0]

    def append_many(self, records: list[dict]) -> list[dict]:
        """Append records in one locked write and one fsync; returns the stored entries."""
        if not records:
            return []
        entries = []
        sealed = self.keyring is not None
        field = "sealed" if sealed else "record"
        with open(self.path, "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                kid, key, keyed = self._signing()  # under the lock: one process creates the key
                seq, prev = self._last_cached(fh)
                out = []
                now_ms = None
                for record in records:
                    record = dict(record)
                    if "ts_ms" not in record:
                        if now_ms is None:
                            now_ms = int(time.time() * 1000)
                        record["ts_ms"] = now_ms
                    seq += 1
                    canonical = _canonical(record)
                    mac = _mac_bytes(keyed, seq, prev, sealed, canonical)
                    entry: dict = {"seq": seq, "prev": prev, "mac": mac, "kid": kid}
                    if sealed:
                        token = self.keyring.encrypt_text(canonical.decode(), aad=f"audit:{seq}")
                        entry["sealed"] = token
                        body = _jstr(token).encode()
                    else:
                        entry["record"] = record
                        body = canonical
                    out.append(_entry_line(seq, prev, mac, kid, field, body))
                    prev = mac
                    entries.append(entry)
                fh.write(b"".join(out))
                fh.flush()
                os.fsync(fh.fileno())
                self._write_head(seq, prev, sealed)
                self._tail = (fh.tell(), seq, prev)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return entries

    def _last_cached(self, fh) -> tuple[int, str]:
        """(seq, mac) of the last entry; cheap when this object wrote the file's tail."""
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        tail = getattr(self, "_tail", None)
        if tail is not None and tail[0] == size:
            return tail[1], tail[2]
        return self._last()

    # -- reading -----------------------------------------------------------------------------
    def _open(self, entry: dict) -> dict:
        if "sealed" in entry:
            if self.keyring is None:
                raise CryptoError("audit record is encrypted and no keyring was given")
            return json.loads(
                self.keyring.decrypt_text(entry["sealed"], aad=f"audit:{entry['seq']}")
            )
        if self.keyring is not None and (self._read_head(verify=False) or {}).get("sealed"):
            raise CryptoError(f"seq {entry.get('seq')}: plaintext record in an encrypted log")
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

    # -- maintenance -------------------------------------------------------------------------
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
                kid, key = self._signing_key()
                anchor = {"seq": dropped["seq"], "mac": dropped["mac"], "kid": kid}
                anchor["anchor_mac"] = _tag(key, "anchor", anchor["seq"], anchor["mac"])
                _write_durable(self.anchor_path, json.dumps(anchor).encode())
                _write_durable(self.path, b"".join(ln + b"\n" for ln in lines[keep_from:]))
                return keep_from
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def reencrypt(self, keyring: Keyring) -> int:
        """Re-seal every record with ``keyring``'s active key and re-MAC the chain under it
        (key rotation), after checking the chain as it is; refuses a chain with problems."""
        if not self.path.exists():
            return 0
        problems = self.verify()
        if problems:
            raise CryptoError(
                f"{self.path}: not re-encrypted, the chain has problems: {problems[0]}"
            )
        new = AuditChain(self.path, keyring, self.retention_days)
        kid, key = new._signing_key()
        out, n = [], 0
        with open(self.path, "r+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                seq, prev = self._read_anchor()
                if seq:
                    anchor = {"seq": seq, "mac": prev, "kid": kid}
                    anchor["anchor_mac"] = _tag(key, "anchor", seq, prev)
                    _write_durable(self.anchor_path, json.dumps(anchor).encode())
                for line in fh.read().splitlines():
                    if not line.strip():
                        continue
                    entry = json.loads(line)
                    record = self._open(entry)
                    seq = int(entry["seq"])
                    entry = {"seq": seq, "prev": prev, "mac": _mac(key, seq, prev, True, record)}
                    entry["kid"] = kid
                    entry["sealed"] = keyring.encrypt_text(
                        _canonical(record).decode(), aad=f"audit:{seq}"
                    )
                    prev = entry["mac"]
                    out.append(_canonical(entry) + b"\n")
                    n += 1
                _write_durable(self.path, b"".join(out))
                new._write_head(seq, prev, True)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        self.keyring = keyring
        self._tail = None
        return n


def _entry_problem(chain: AuditChain, lineno: int, entry: dict, seq: int, prev: str, sealed):
    """(problems, record) of one entry given the chain state before it."""
    out = []
    eseq, eprev, emac, kid = int(entry["seq"]), str(entry["prev"]), str(entry["mac"]), entry["kid"]
    is_sealed = "sealed" in entry
    if sealed and not is_sealed:
        out.append(
            ChainProblem(lineno, "plaintext", f"seq {eseq}: plaintext record in an encrypted log")
        )
    try:
        record = (
            json.loads(chain.keyring.decrypt_text(entry["sealed"], aad=f"audit:{eseq}"))
            if is_sealed and chain.keyring is not None
            else entry.get("record")
        )
        if is_sealed and chain.keyring is None:
            raise CryptoError("audit record is encrypted and no keyring was given")
    except (CryptoError, ValueError) as exc:
        return out + [ChainProblem(lineno, "undecryptable", str(exc))]
    if eseq <= seq:
        out.append(ChainProblem(lineno, "reordered", f"seq {eseq} after seq {seq}"))
    elif eseq != seq + 1:
        out.append(ChainProblem(lineno, "removed", f"seq jumps from {seq} to {eseq}"))
    elif eprev != prev:
        out.append(
            ChainProblem(lineno, "removed", f"seq {eseq} does not link to the record before")
        )
    key = chain._key(str(kid))
    if key is None:
        out.append(ChainProblem(lineno, "key", f"seq {eseq}: MAC key {kid!r} is not available"))
    elif not isinstance(record, dict) or not hmac.compare_digest(
        _mac(key, eseq, eprev, is_sealed, record), emac
    ):
        out.append(ChainProblem(lineno, "altered", f"seq {eseq}: content does not match its MAC"))
    return out


def verify_chain(path: str | os.PathLike, keyring: Keyring | None = None) -> list[ChainProblem]:
    """Check every link, the anchor and the head of an audit file; an empty list is intact."""
    chain = AuditChain(path, keyring)
    problems: list[ChainProblem] = []
    seq, prev = 0, GENESIS
    anchor = chain._read_json(chain.anchor_path)
    if anchor is not None:
        key = chain._key(str(anchor.get("kid")))
        seq, prev = int(anchor.get("seq", 0)), str(anchor.get("mac", ""))
        if key is None or not hmac.compare_digest(
            _tag(key, "anchor", seq, prev), str(anchor.get("anchor_mac"))
        ):
            problems.append(
                ChainProblem(0, "altered", f"{chain.anchor_path.name}: anchor does not verify")
            )
    head = chain._read_head()
    sealed = keyring is not None
    if head is not None:
        if not chain._head_verifies(head):
            problems.append(
                ChainProblem(0, "altered", f"{chain.head_path.name}: head does not verify")
            )
            head = None
        else:
            sealed = bool(head["sealed"])
    count = 0
    if chain.path.exists():
        with chain.path.open(encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                count += 1
                try:
                    entry = json.loads(line)
                    eseq, emac = int(entry["seq"]), str(entry["mac"])
                    str(entry["prev"]), entry["kid"]
                except (ValueError, KeyError, TypeError) as exc:
                    problems.append(
                        ChainProblem(lineno, "malformed", f"not an audit entry: {exc!r}")
                    )
                    continue
                problems += _entry_problem(chain, lineno, entry, seq, prev, sealed)
                seq, prev = eseq, emac
    if head is not None:
        if seq < int(head["seq"]):
            problems.append(
                ChainProblem(
                    count,
                    "truncated",
                    f"the head records seq {head['seq']} but the file ends at seq {seq} "
                    "(records removed from the end, or the file emptied or replaced)",
                )
            )
        elif seq == int(head["seq"]) and prev != head["mac"]:
            problems.append(ChainProblem(count, "altered", "the last record is not the head's"))
    elif count or anchor is not None:
        problems.append(
            ChainProblem(0, "truncated", f"{chain.head_path.name} is missing (log replaced?)")
        )
    return problems


def verify_copy(records: list[dict], chain: AuditChain, name: str) -> list[ChainProblem]:
    """Check the store's copy of a chain's records (each carries ``chain``, ``seq``, ``prev``
    and ``mac``): every MAC, no gaps, and nothing missing at the end against the head."""
    mine = sorted(
        (r for r in records if r.get("chain") == name), key=lambda r: int(r.get("seq", 0))
    )
    problems: list[ChainProblem] = []
    seq, prev = None, None
    for i, r in enumerate(mine, start=1):
        rec = {k: v for k, v in r.items() if k not in ("chain", "seq", "prev", "mac", "kid")}
        key = chain._key(str(r.get("kid")))
        rseq = int(r["seq"])
        if seq is not None and (rseq != seq + 1 or r["prev"] != prev):
            problems.append(ChainProblem(i, "removed", f"{name}: seq {seq} then {rseq}"))
        if key is None or not hmac.compare_digest(
            _mac(key, rseq, r["prev"], chain.keyring is not None, rec), str(r.get("mac"))
        ):
            problems.append(
                ChainProblem(i, "altered", f"{name}: seq {rseq} does not match its MAC")
            )
        seq, prev = rseq, r["mac"]
    head = chain._read_head()
    if head is not None and (seq or 0) < int(head["seq"]) and mine:
        problems.append(
            ChainProblem(len(mine), "truncated", f"{name}: copy ends at {seq}, head {head['seq']}")
        )
    return problems
