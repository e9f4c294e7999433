"""``dingskill report daily``: the daily health report of a runtime (from its configuration:
audit log, review file), written as Markdown + HTML with plots, optionally posted."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("report", help="operations reports")
    rs = r.add_subparsers(dest="report", metavar="KIND", required=True)
    d = rs.add_parser("daily", help="last 24 h: messages, latency, skills, intents, alerts")
    d.add_argument("--config", default=None, help="the runtime's configuration file")
    d.add_argument("-o", "--output", default=None, help="report folder (default report.output_dir)")
    d.add_argument("--hours", type=float, default=24.0, help="the last N hours (default 24)")
    d.add_argument("--metrics-url", default=None, help="scrape resource use from /metrics")
    d.add_argument("--post", action="store_true", help="post the digest to the operators' group")
    d.add_argument("--json", action="store_true", help="print one JSON object")
    d.set_defaults(func=_daily)


def _daily(args) -> int:
    from .. import http_sync
    from ..runtime.config import ConfigError, load_config
    from ..runtime.report import build_daily_report
    from ..runtime.report.post import ReportPostError
    from ..security.crypto import CryptoError, Keyring

    try:
        config = load_config(args.config)
        keyring = Keyring.from_env()
    except (ConfigError, CryptoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = ""
    if args.metrics_url:
        try:
            metrics = http_sync.get(args.metrics_url, timeout=10).text
        except http_sync.HttpError as exc:
            print(f"warning: {args.metrics_url}: {exc}; resource use left out", file=sys.stderr)
    try:
        report = build_daily_report(
            config,
            hours=args.hours,
            out_dir=args.output,
            metrics_text=metrics,
            post=args.post,
            keyring=keyring,
        )
    except (ReportPostError, ValueError, CryptoError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return 0
    st = report.stats
    print(f"wrote {report.markdown} and {report.html}")
    print(
        f"{st.messages} messages, P50 {st.p50_ms} ms, P99 {st.p99_ms} ms, "
        f"out of scope {100 * st.oos_rate:.1f}%, {len(st.alerts)} alert(s)"
    )
    print(f"utterances to label: {report.review}")
    if report.posted is not None:
        print(f"posted to the operators' group (processQueryKey {report.posted})")
    return 0
