"""The daily health report: 24 h of audit records and metrics -> statistics -> Markdown and
HTML with plots -> the operators' group (robot OpenAPI), plus the day's review file."""

from .collect import DailyStats, collect
from .daily import DailyReport, build_daily_report

__all__ = ["DailyReport", "DailyStats", "build_daily_report", "collect"]
