"""``build_daily_report``: the last 24 h of a runtime's audit (messages and admin), its review
file and optionally a metrics scrape -> ``REPORTS/<date>/report.{md,html}``, plots,
``review-<date>.csv``; optionally posted to the operators' group."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from ...security.audit_chain import AuditChain
from ..review import export_review, review_rows
from .collect import DailyStats, collect
from .post import post_group_markdown
from .render import render, summary_markdown

__all__ = ["DailyReport", "build_daily_report", "DEFAULT_OPENAPI"]

DEFAULT_OPENAPI = "https://api.dingtalk.com"


@dataclass
class DailyReport:
    directory: Path
    markdown: Path
    html: Path
    review: Path
    stats: DailyStats
    posted: str | None = None

    def to_dict(self) -> dict:
        return {
            "directory": str(self.directory),
            "markdown": str(self.markdown),
            "html": str(self.html),
            "review": str(self.review),
            "posted": self.posted,
            "stats": self.stats.to_dict(),
        }


def build_daily_report(
    config,
    now: float | None = None,
    hours: float = 24.0,
    out_dir=None,
    metrics_text: str = "",
    post: bool = False,
    keyring=None,
) -> DailyReport:
    """Write the report of the ``hours`` before ``now`` for the runtime ``config``."""
    until_ms = int((time.time() if now is None else now) * 1000)
    since_ms = until_ms - int(hours * 3_600_000)
    audit_path = Path(config.get("audit.path"))
    chains = [
        AuditChain(audit_path, keyring=keyring),
        AuditChain(audit_path.with_name("admin.jsonl"), keyring=keyring),
    ]
    threshold = config.get("report.low_confidence")
    stats = collect(
        itertools.chain.from_iterable(c.records() for c in chains),
        since_ms,
        until_ms,
        threshold,
        metrics_text,
    )
    day = time.strftime("%Y-%m-%d", time.gmtime(until_ms / 1000))
    base = Path(
        out_dir or config.get("report.output_dir") or Path(config.get("skills.home")) / "reports"
    )
    directory = base / day
    directory.mkdir(parents=True, exist_ok=True)
    rows = review_rows(
        AuditChain(audit_path.with_name("review.jsonl"), keyring=keyring), since_ms, until_ms
    )
    review = export_review(rows, directory / f"review-{day}.csv")
    title = f"dingskill daily report {day}"
    md, html_path = render(stats, directory, title, review.name)
    report = DailyReport(directory, md, html_path, review, stats)
    if post:
        code = config.get("report.robot_code") or config.app_key
        group = config.get("report.open_conversation_id")
        if not group:
            raise ValueError("report.open_conversation_id: set the operators' group to post to")
        endpoint = (
            config.get("report.openapi_endpoint")
            or config.get("channels.enterprise_chat.endpoint")
            or DEFAULT_OPENAPI
        )
        text = summary_markdown(stats, title, f"{html_path} ({len(rows)} utterances to label)")
        report.posted = post_group_markdown(
            endpoint, config.app_key, config.app_secret, code, group, title, text
        )
    return report
