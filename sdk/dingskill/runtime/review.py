"""Production feeding the next training round: the utterances the bot did not recognise
(out of scope / fallback) or recognised with low confidence, kept for labelling.

They are user text, so they go to their own hash-chained file beside the audit log
(``review.jsonl``), sealed with the data key when one is configured and dropped after the
audit retention period. :meth:`ReviewQueue.observe` only buffers (the message path never
waits on the disk); :meth:`ReviewQueue.flush` writes, from a background task.
:func:`export_review` turns a period into a CSV dataset (``text,intent,...``) that
``dingskill.datasets.load`` and the notebooks read, the model's guess as the intent to correct.
"""

from __future__ import annotations

import io
import threading
from collections import Counter
from pathlib import Path

from .. import csvsafe
from ..security.audit_chain import AuditChain

__all__ = ["ReviewQueue", "export_review", "review_rows"]

MAX_BUFFER = 10_000


class ReviewQueue:
    def __init__(
        self, path, keyring=None, retention_days: float = 180, threshold: float = 0.6
    ) -> None:
        self.chain = AuditChain(path, keyring=keyring, retention_days=retention_days)
        self.threshold = threshold
        self._buf: list[dict] = []
        self._lock = threading.Lock()
        self.dropped = 0

    def observe(self, text: str, reply) -> None:
        """Keep ``text`` if its reply was a fallback / out of scope or under the threshold."""
        if reply.source in ("ratelimit", "error") or not text.strip():
            return
        if reply.intent == "oos" or reply.source == "fallback":
            reason = "unrecognised"
        elif reply.source == "model" and reply.confidence < self.threshold:
            reason = "low_confidence"
        else:
            return
        rec = {
            "text": text,
            "reason": reason,
            "intent": reply.intent or "oos",
            "confidence": round(float(reply.confidence), 4),
            "skill": reply.skill_id or "-",
            "alternatives": [[i, round(float(p), 4)] for i, p in reply.alternatives[:3]],
        }
        with self._lock:
            if len(self._buf) >= MAX_BUFFER:
                self.dropped += 1
                return
            self._buf.append(rec)

    def flush(self) -> int:
        """Write what was buffered; returns how many records."""
        with self._lock:
            batch, self._buf = self._buf, []
        self.chain.append_many(batch)
        return len(batch)


def review_rows(chain: AuditChain, since_ms: int, until_ms: int) -> list[dict]:
    """One row per distinct utterance in the period: most frequent first."""
    seen: dict[str, dict] = {}
    counts: Counter = Counter()
    for rec in chain.records():
        if not since_ms <= int(rec.get("ts_ms", 0)) < until_ms:
            continue
        key = " ".join(str(rec.get("text", "")).split())
        if not key:
            continue
        counts[key] += 1
        row = seen.setdefault(key, {"text": key, "first_seen_ms": rec["ts_ms"]})
        row.update(
            intent=rec.get("intent", "oos"),
            confidence=rec.get("confidence", 0.0),
            reason=rec.get("reason", ""),
            skill=rec.get("skill", "-"),
        )
    rows = [{**seen[k], "count": n} for k, n in counts.most_common()]
    return rows


def export_review(rows: list[dict], path) -> Path:
    """Write rows as a CSV dataset: ``text,intent`` (the guess, to be corrected) then
    ``reason,confidence,count,skill``. Chat text is a stranger's: cells that a spreadsheet
    would run as a formula are neutralised (:mod:`dingskill.csvsafe`)."""
    buf = io.StringIO()
    w = csvsafe.writer(buf)
    w.writerow(["text", "intent", "reason", "confidence", "count", "skill"])
    for r in rows:
        w.writerow([r["text"], r["intent"], r["reason"], r["confidence"], r["count"], r["skill"]])
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(buf.getvalue(), encoding="utf-8")
    return p
