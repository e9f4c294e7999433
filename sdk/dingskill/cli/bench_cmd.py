"""``dingskill bench``: the CLINC150 NLU benchmark, the entity benchmark and the runtime
benchmark."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="run a benchmark")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCHMARK", required=True)

    clinc = bench_sub.add_parser("clinc150", help="intent accuracy and speed on CLINC150")
    clinc.add_argument("--data-home", default=None, help="folder holding data_full.json")
    clinc.add_argument(
        "--variant",
        default="full",
        choices=["full", "small", "imbalanced", "oos_plus"],
        help="which CLINC150 data file (default full)",
    )
    clinc.add_argument(
        "--embeddings",
        default="default",
        help="embedding block: 'default', 'none', a name (use-m3, wordllama-l2-64, "
        "wordllama-l2-256) or model2vec:FOLDER / onnx:FOLDER",
    )
    clinc.add_argument("--json", action="store_true", help="print one JSON object last")
    clinc.set_defaults(func=_clinc150)

    ent = bench_sub.add_parser(
        "entities", help="entity F1, intent accuracy and speed on SNIPS (en) and CAIS (zh)"
    )
    ent.add_argument(
        "--data-home",
        default=None,
        help="folder holding snips/ and cais/ (default ../shared/datasets)",
    )
    ent.add_argument(
        "--datasets", default="snips,cais", help="comma-separated, of snips,cais (default both)"
    )
    ent.add_argument("--train", default=None, help="a span-annotated JSONL training file")
    ent.add_argument("--test", default=None, help="its JSONL test file")
    ent.add_argument("--name", default=None, help="the name of the --train/--test pair")
    ent.add_argument(
        "--embeddings",
        default="default",
        help="the intent classifier's embedding block: 'default', 'none' or a name",
    )
    ent.add_argument("--json", action="store_true", help="print one JSON object last")
    ent.set_defaults(func=_entities)

    rt = bench_sub.add_parser("runtime", help="throughput and latency of the Stream runtime")
    rt.add_argument(
        "--replicas", type=int, default=1, help="runtime processes (Redis storage when > 1)"
    )
    rt.add_argument(
        "--processes",
        type=int,
        default=1,
        help="worker processes of each runtime (processes.count; 0: one per core)",
    )
    rt.add_argument(
        "--messages",
        type=int,
        default=None,
        help="messages to send (default 10000; 200 with --ai-cards)",
    )
    rt.add_argument("--users", type=int, default=200, help="distinct senders (default 200)")
    rt.add_argument("--rate", type=float, default=200.0, help="offered msg/s in the latency phase")
    rt.add_argument("--duration", type=float, default=10.0, help="seconds of the latency phase")
    rt.add_argument(
        "--no-anchor",
        action="store_true",
        help="skip the bare SDK echo bot and the harness ceiling run after the runtime",
    )
    rt.add_argument(
        "--starve", type=int, default=0, help="CPU-bound processes running beside (default 0)"
    )
    rt.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the whole benchmark this many times back to back and report each round "
        "and the medians (the machine's speed drifts between runs; default 1)",
    )
    rt.add_argument(
        "--resend-after",
        type=float,
        default=30.0,
        help="with --delivery until_ack: seconds before an un-ACKed message is pushed again",
    )
    rt.add_argument(
        "--delivery",
        choices=["once", "until_ack"],
        default="once",
        help="robot messages pushed once (documented, default) or until ACKed (lenient)",
    )
    rt.add_argument(
        "--broker",
        action="store_true",
        help="the split deployment: RabbitMQ, one gateway, --workers workers, audit-writer",
    )
    rt.add_argument("--workers", type=int, default=2, help="workers with --broker")
    rt.add_argument(
        "--shards",
        type=int,
        default=None,
        help="shard queues with --broker (default: the runtime's broker.shards default)",
    )
    rt.add_argument(
        "--traffic",
        choices=["repeat", "distinct", "mixed"],
        default="mixed",
        help="message texts: the test utterances cycled (repeat), never one twice (distinct), "
        "or a Zipf-like mix with >= 80%% new ones (mixed, default)",
    )
    rt.add_argument(
        "--data-home",
        default=None,
        help="folder holding clinc150/ and cais/ for the distinct texts "
        "(default ../shared/datasets; without them, generated sentences)",
    )
    rt.add_argument(
        "--ai-cards",
        action="store_true",
        help="every reply an AI card (create, deliver, stream, finish) with the emulator holding "
        "each OpenAPI to --qps-limit calls a second: reports unfinished_cards and duplicated",
    )
    rt.add_argument(
        "--qps-limit",
        type=int,
        default=20,
        help="with --ai-cards: calls per second per app per API (documented: 20)",
    )
    rt.add_argument("--json", action="store_true", help="print one JSON object last")
    rt.set_defaults(func=_runtime)


def _print(result: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(f"{key:<{width}}  {value}")


def _clinc150(args: argparse.Namespace) -> int:
    from ..evaluation.benchmark import clinc150_benchmark
    from .nlu_cmd import embeddings_option

    result = clinc150_benchmark(
        data_home=args.data_home,
        variant=args.variant,
        progress=True,  # on stderr: stdout keeps the one JSON object with --json
        embeddings=embeddings_option(args.embeddings),
    )
    _print(result, args.json)
    return 0


def _entities(args: argparse.Namespace) -> int:
    import sys

    from ..evaluation.entity_benchmark import DATASETS, EntityBenchmarkDataError, entities_benchmark
    from .nlu_cmd import embeddings_option

    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = sorted(set(names) - set(DATASETS))
    if unknown:
        print(
            f"error: unknown dataset(s) {unknown}; choose from {sorted(DATASETS)}", file=sys.stderr
        )
        return 2
    try:
        result = entities_benchmark(
            data_home=args.data_home,
            datasets=tuple(names),
            train=args.train,
            test=args.test,
            name=args.name,
            progress=True,  # on stderr: stdout keeps the one JSON object with --json
            embeddings=embeddings_option(args.embeddings),
        )
    except EntityBenchmarkDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for name, figures in result["datasets"].items():
            print(name)
            _print(figures, False)
    return 0


def _runtime(args: argparse.Namespace) -> int:
    if args.ai_cards:
        from ..runtime.bench_cards import run_ai_card_benchmark

        result = run_ai_card_benchmark(
            messages=args.messages or 200,
            rate=args.rate,
            qps_limit=args.qps_limit,
            replicas=args.replicas,
            progress=not args.json,
        )
        _print(result, args.json)
        return 0
    if args.rounds < 1:
        import sys

        print(f"error: --rounds must be at least 1, got {args.rounds}", file=sys.stderr)
        return 2
    args.messages = args.messages or 10_000
    from ..runtime.benchmark import run_benchmark, summarize_rounds

    common = {  # what both deployments' benchmarks take
        "messages": args.messages,
        "users": args.users,
        "rate": args.rate,
        "duration": args.duration,
        "progress": not args.json,
        "traffic": args.traffic,
        "data_home": args.data_home,
        "anchor": not args.no_anchor,
    }

    def one_round() -> dict:
        if args.broker:
            from ..runtime.broker.benchmark import run_broker_benchmark

            return run_broker_benchmark(workers=args.workers, shards=args.shards, **common)
        return run_benchmark(
            replicas=args.replicas,
            processes=args.processes,
            starve=args.starve,
            resend_after=args.resend_after,
            delivery=args.delivery,
            **common,
        )

    results = [one_round() for _ in range(args.rounds)]
    _print(summarize_rounds(results) if args.rounds > 1 else results[0], args.json)
    return 0
