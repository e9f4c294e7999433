"""Every embedding block side by side: n-grams only, the WordLlama tables, the multilingual
USE v3 encoder (the default).

    python bench/embeddings.py [--data-home ../shared/datasets/clinc150] [--json]

For each sample dataset of this project (Chinese and English: train on ``utterances.csv``,
score ``test.csv`` with the automatic oos threshold) prints in-scope accuracy and oos
recall (%) per variant, and for each example skill the share of the other domains'
utterances it refuses (``dingskill.evaluation.cross_domain``). With ``--data-home`` it also
runs ``dingskill bench clinc150`` for every variant, one after the other in this one command
(each in a fresh child process, so each peak memory is its own: ``peak_rss_mb`` of the main
process, ``workers_peak_rss_mb`` the largest fitting worker). Progress goes to stderr; the
last line is one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from dingskill import IntentClassifier, evaluate
from dingskill.datasets import load
from dingskill.evaluation.cross_domain import SKILL_DATA, cross_domain_rejection

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ["office-zh", "it-helpdesk-zh", "office-en", "smalltalk-en"]
VARIANTS = {"none": None, "wordllama-l2-64": "wordllama-l2-64", "use-m3": "use-m3"}

_CHILD = """
import json, resource, sys
from dingskill.evaluation.benchmark import clinc150_benchmark
r = clinc150_benchmark(sys.argv[1], progress=True, embeddings=None if sys.argv[2] == "none" else sys.argv[2])
r["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
r["workers_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
print(json.dumps(r))
"""


def sample(name: str, embeddings) -> dict:
    train = load(ROOT / "datasets" / name / "utterances.csv")
    test = load(ROOT / "datasets" / name / "test.csv")
    model = IntentClassifier(embeddings=embeddings, random_state=0).fit(train.texts, train.intents)
    s = evaluate(model, test, sweep=False).summary
    recall = s["oos_recall"]
    out = {
        "in_scope_accuracy": round(100 * s["in_scope_accuracy"], 2),
        "oos_recall": None if recall != recall else round(100 * recall, 2),
    }
    skill = next((k for k, v in SKILL_DATA.items() if v == name), None)
    if skill:
        from dingskill.skills import Skill

        sk = Skill.load(ROOT / "skills" / skill)
        sk.train(embeddings=embeddings)
        rej = cross_domain_rejection(sk.decide, ROOT / "datasets", name)
        out["skill"] = skill
        out["min_other_domain_oos"] = min(rej.values())
    return out


def clinc(data_home: str, variant: str) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", _CHILD, data_home, variant],
        capture_output=True,
        text=True,
        check=False,
    )
    if res.returncode != 0:
        raise SystemExit(f"clinc150 {variant} failed:\n{res.stderr[-2000:]}")
    out = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"clinc150 {variant}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-home", default=None, help="CLINC150 folder (optional)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict[str, dict] = {}
    for name in SAMPLES:
        print(f"{name} …", file=sys.stderr, flush=True)
        out[name] = {v: sample(name, emb) for v, emb in VARIANTS.items()}
    if args.data_home:
        out["clinc150"] = {v: clinc(args.data_home, v) for v in VARIANTS}
    head = "".join(f"{v:>18}" for v in VARIANTS)
    print(f"{'dataset / figure':<36}{head}")
    for name, r in out.items():
        keys = [k for k in r["none"] if k != "skill"]
        for k in keys:
            cells = "".join(f"{r[v].get(k)!s:>18}" for v in VARIANTS)
            print(f"{name + ' ' + k:<36}{cells}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
