"""CPU per utterance of the use-m3 encoder's forward pass: the ONNX Runtime graph against
numpy's path, at several batch sizes, on utterances it has never encoded.

    PYTHONPATH=sdk python bench/encoder_forward.py [--utterances 1200] [--json]

Utterances: the project's Chinese and English sample datasets (``datasets/*/*.csv``), each
sent once per variant and batch size with a variant tag appended, so no utterance is a
cache hit (token rows of new ids are computed on the way, as in the runtime). Reports the
thread CPU per utterance (ms) for batch sizes 1, 4 and 16 with the graph
(``use_m3_graph``) and with numpy's path, and the largest difference between the two
paths' vectors. The last line is one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--utterances", type=int, default=1200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    import pandas as pd
    from dingskill.nlu.normalize import normalize_text
    from dingskill.nlu.use_m3 import load_use_m3, pin_blas_threads

    pin_blas_threads(1)  # as the runtime does
    texts: list[str] = []
    for f in sorted((ROOT / "datasets").glob("*/*.csv")):
        texts += [normalize_text(str(t)) for t in pd.read_csv(f)["text"]]
    texts = [t for t in dict.fromkeys(texts) if t]
    enc = load_use_m3()
    graph = enc._graph
    if graph is None:
        raise SystemExit("onnxruntime is not installed (or DINGSKILL_USE_M3_GRAPH=0)")
    enc._encode(texts[:500])  # load and warm both paths
    a = enc._encode(texts)
    enc._graph = None
    b = enc._encode(texts)
    result: dict = {"max_abs_difference": float(np.abs(a - b).max())}
    n = min(args.utterances, len(texts))
    for name, forward in (("graph", graph), ("numpy", None)):
        enc._graph = forward
        for size in (1, 4, 16):
            batch = [f"{t} {name}{size}" for t in texts[:n]]
            cpu = time.thread_time()
            for i in range(0, n, size):
                enc._encode(batch[i : i + size])
            result[f"{name}_batch{size}_cpu_ms"] = round((time.thread_time() - cpu) / n * 1000, 3)
            print(f"{name:5s} batch {size:2d}: {result[f'{name}_batch{size}_cpu_ms']:.3f} ms")
    enc._graph = graph
    result["utterances"] = n
    print(f"largest difference between the paths' vectors: {result['max_abs_difference']:.2e}")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
