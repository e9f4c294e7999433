"""What the dialogue adds per message: the dialogue corpus (tests/conversations/dialogue_*.jsonl)
replayed through the one Pipeline in memory with the three example skills loaded together and
a fixed today, timing each turn by what answered it.

    python bench/dialogue.py [--repeat 3] [--json]

A turn within a form (``Reply.source == "dialogue"``: set / correct / confirm ...) runs the
skill's entity finders (lookups, system entities, the trained extractor) and, only when the
message is more than a bare answer, the routing across skills; a bare answer runs no intent
model at all. Figures: p50 / p99 of the engine's own latency (``Reply.latency_ms``) for form
turns and for the other turns (starting a form, digressions, out of scope), each the fastest
of ``--repeat`` replays (a busy machine's interruptions stay out; from the second replay on
the classifiers' and the encoder's caches are warm, so ``--repeat 1`` is the cold figure),
plus the task success of the replay.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TODAY = dt.date(2026, 12, 9)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    from dingskill.notebook.regression import replay
    from dingskill.skills import Skill

    skills = [Skill.load(ROOT / "skills" / n) for n in ("hr-assistant", "faq-en", "it-helpdesk")]
    for s in skills:
        s.train()
    files = sorted((ROOT / "tests" / "conversations").glob("dialogue_*.jsonl"))
    best: dict[tuple, float] = {}
    kind: dict[tuple, str] = {}
    failed: set = set()
    cases: set = set()
    for _ in range(max(1, args.repeat)):
        for path in files:
            for n, row, reply in replay(skills, path, today=TODAY):
                key = (path.name, n)
                cases.add((path.name, row["case"]))
                best[key] = min(best.get(key, float("inf")), reply.latency_ms)
                kind[key] = "form" if reply.source == "dialogue" else "other"
                want = row.get("expected_slots")
                if reply.intent != row["expected_intent"] or (
                    want is not None and reply.slots != want
                ):
                    failed.add((path.name, row["case"]))
    out = {"turns": len(best), "conversations": len(cases)}
    for k in ("form", "other"):
        xs = np.array([v for key, v in best.items() if kind[key] == k])
        out[k] = {
            "turns": int(xs.size),
            "p50_ms": round(float(np.percentile(xs, 50)), 2),
            "p99_ms": round(float(np.percentile(xs, 99)), 2),
        }
    out["task_success"] = round(100 * (1 - len(failed) / max(1, len(cases))), 1)
    if not args.json:
        for k in ("form", "other"):
            f = out[k]
            print(
                f"{k:6} turns {f['turns']:4}  p50 {f['p50_ms']:7.2f} ms  p99 {f['p99_ms']:7.2f} ms"
            )
        print(f"task success {out['task_success']}% over {out['conversations']} conversations")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
