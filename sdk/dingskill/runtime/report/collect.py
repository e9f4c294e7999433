"""Statistics of one period from audit records (and, when given, a metrics scrape)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

__all__ = ["DailyStats", "collect", "parse_metrics"]

ALERT_OPERATIONS = ("baseline.alert",)


@dataclass
class SkillStats:
    skill_id: str
    calls: int = 0
    errors: int = 0

    @property
    def success_rate(self) -> float:
        return 1.0 - self.errors / self.calls if self.calls else 1.0


@dataclass
class DailyStats:
    since_ms: int
    until_ms: int
    messages: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    p50_ms: float | None = None
    p99_ms: float | None = None
    oos_rate: float = 0.0
    low_confidence: int = 0
    error_rate: float = 0.0
    skills: list[SkillStats] = field(default_factory=list)
    top_intents: list[tuple[str, int]] = field(default_factory=list)
    hourly: list[dict] = field(default_factory=list)  # hour_ms, messages, p50_ms, p99_ms
    alerts: list[dict] = field(default_factory=list)
    denied: int = 0
    resources: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "since_ms": self.since_ms,
            "until_ms": self.until_ms,
            "messages": self.messages,
            "outcomes": self.outcomes,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "oos_rate": round(self.oos_rate, 4),
            "low_confidence": self.low_confidence,
            "error_rate": round(self.error_rate, 4),
            "skills": [
                {
                    "skill_id": s.skill_id,
                    "calls": s.calls,
                    "errors": s.errors,
                    "success_rate": round(s.success_rate, 4),
                }
                for s in self.skills
            ],
            "top_intents": [list(t) for t in self.top_intents],
            "hourly": self.hourly,
            "alerts": self.alerts,
            "denied": self.denied,
            "resources": self.resources,
        }


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def collect(
    records, since_ms: int, until_ms: int, low_confidence: float = 0.6, metrics_text: str = ""
) -> DailyStats:
    """Statistics of message and admin records with ``since_ms <= ts_ms < until_ms``."""
    st = DailyStats(since_ms, until_ms)
    outcomes: Counter = Counter()
    intents: Counter = Counter()
    latencies: list[float] = []
    skills: dict[str, SkillStats] = {}
    hours: dict[int, list[float]] = {}
    n_by_hour: Counter = Counter()
    oos = 0
    for rec in records:
        ts = int(rec.get("ts_ms", 0))
        if not since_ms <= ts < until_ms:
            continue
        op = rec.get("operation")
        if op == "message":
            result = str(rec.get("result", ""))
            outcomes[result] += 1
            if result in ("duplicate", "in_progress"):
                continue
            st.messages += 1
            lat = rec.get("latency_ms")
            hour = ts - (ts - since_ms) % 3_600_000
            bucket = hours.setdefault(hour, [])
            n_by_hour[hour] += 1
            if isinstance(lat, int | float):
                latencies.append(float(lat))
                bucket.append(float(lat))
            intent = rec.get("intent") or "oos"
            if intent == "oos" or rec.get("source") == "fallback":
                oos += 1
            else:
                intents[intent] += 1
            conf = rec.get("confidence")
            if rec.get("source") == "model" and isinstance(conf, int | float):
                st.low_confidence += conf < low_confidence
            sid = rec.get("object")
            if sid and sid != "-":
                s = skills.setdefault(sid, SkillStats(sid))
                s.calls += 1
                s.errors += result == "error" or bool(rec.get("error") and result != "fallback")
        elif rec.get("kind") == "admin":
            if op in ALERT_OPERATIONS or rec.get("result") in ("alert", "failed"):
                st.alerts.append(
                    {
                        "ts_ms": ts,
                        "operation": op,
                        "object": rec.get("object"),
                        "result": rec.get("result"),
                        "detail": {
                            k: rec[k]
                            for k in ("count", "threshold", "event_kind", "error")
                            if k in rec
                        },
                    }
                )
            if rec.get("result") == "denied":
                st.denied += 1
    st.outcomes = dict(outcomes)
    st.p50_ms, st.p99_ms = _pct(latencies, 50), _pct(latencies, 99)
    st.oos_rate = oos / st.messages if st.messages else 0.0
    st.error_rate = outcomes.get("error", 0) / st.messages if st.messages else 0.0
    st.skills = sorted(skills.values(), key=lambda s: -s.calls)
    st.top_intents = intents.most_common(10)
    st.hourly = [
        {
            "hour_ms": h,
            "messages": n_by_hour[h],
            "p50_ms": _pct(v, 50),
            "p99_ms": _pct(v, 99),
        }
        for h, v in sorted(hours.items())
    ]
    st.resources = parse_metrics(metrics_text)
    return st


_WANTED = {
    "process_resident_memory_bytes": "memory_rss_mb",
    "process_cpu_seconds_total": "cpu_seconds",
    "process_open_fds": "open_fds",
    "dingskill_inflight_messages": "inflight_messages",
    "dingskill_skills_loaded": "skills_loaded",
}


def parse_metrics(text: str) -> dict[str, float]:
    """The resource figures of a Prometheus text exposition (process memory, CPU, fds...)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+([-+0-9.eEnaNIf]+)$", line)
        if not m or m.group(1) not in _WANTED:
            continue
        value = float(m.group(3))
        key = _WANTED[m.group(1)]
        if key == "memory_rss_mb":
            value = round(value / 2**20, 1)
        out[key] = out.get(key, 0.0) + value
    return out
