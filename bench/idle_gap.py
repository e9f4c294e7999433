"""CPU of one new utterance's encoding after an idle gap: how fast the machine forgets the
encoder (its weights and the interpreter's own state leave the caches while nothing runs).

    PYTHONPATH=sdk python bench/idle_gap.py [--utterances 300] [--gaps 0,1,5,10,20] [--json]

A runtime at 200 msg/s with two workers sees a message every ~10 ms per process: each one
finds the ~9 MB of use-m3 weights (and the rest of its path) cold. This encodes distinct
utterances (``dingskill.runtime.traffic``, as ``bench runtime --traffic distinct``) one at a
time, each after a pause of ``gap`` ms — asleep (the core idles) and, for the same gaps,
spinning in a loop that touches almost no memory (the core stays busy with our process) —
rounds interleaved so the machine's drift spreads over every gap. Reports the thread CPU per
utterance (p50, p90, mean, ms) per gap and kind of pause; the last line is one JSON object
with ``--json``. The encoder is warmed on 3,000 utterances first (token rows, the graph).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _pause(kind: str, gap_s: float) -> None:
    if kind == "sleep":
        time.sleep(gap_s)
        return
    end = time.perf_counter() + gap_s
    while time.perf_counter() < end:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=300, help="per gap and kind of pause")
    ap.add_argument("--gaps", default="0,1,5,10,20", help="idle gaps in ms, comma-separated")
    ap.add_argument("--warm", type=int, default=3000, help="utterances encoded before timing")
    ap.add_argument("--data-home", type=Path, default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    gaps = [float(g) for g in args.gaps.split(",") if g.strip()]
    if not gaps or min(gaps) < 0:
        raise SystemExit(f"--gaps: comma-separated milliseconds >= 0, got {args.gaps!r}")

    from dingskill.nlu.normalize import normalize_text
    from dingskill.nlu.use_m3 import load_use_m3, pin_blas_threads
    from dingskill.runtime.traffic import draw

    pin_blas_threads(1)  # as the runtime does
    kinds = ("sleep", "spin")
    n = args.warm + args.utterances * len(gaps) * len(kinds)
    texts = [normalize_text(t) for t in draw("distinct", n, ROOT, args.data_home)]
    enc = load_use_m3()
    enc.transform(texts[: args.warm], normalized=True)
    cpu: dict[tuple[str, float], list[float]] = {(k, g): [] for k in kinds for g in gaps}
    pos = args.warm
    rounds = 10
    per_round = max(1, args.utterances // rounds)
    while pos < n:
        for key in cpu:
            for _ in range(per_round):
                if pos >= n or len(cpu[key]) >= args.utterances:
                    break
                _pause(key[0], key[1] / 1000)
                t0 = time.thread_time()
                enc.transform([texts[pos]], normalized=True)
                cpu[key].append((time.thread_time() - t0) * 1000)
                pos += 1
        if all(len(v) >= args.utterances for v in cpu.values()):
            break
    result: dict = {"utterances": args.utterances, "encoder": "use-m3", "rows": []}
    print(f"{'pause':>6} {'gap ms':>7} {'p50':>7} {'p90':>7} {'mean':>7}  (thread CPU ms)")
    for (kind, gap), values in cpu.items():
        v = np.array(values)
        row = {
            "pause": kind,
            "gap_ms": gap,
            "p50_ms": round(float(np.percentile(v, 50)), 3),
            "p90_ms": round(float(np.percentile(v, 90)), 3),
            "mean_ms": round(float(v.mean()), 3),
        }
        result["rows"].append(row)
        print(f"{kind:>6} {gap:7g} {row['p50_ms']:7.3f} {row['p90_ms']:7.3f} {row['mean_ms']:7.3f}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
