"""The daily report as Markdown (with PNG plots beside it) and as one self-contained HTML
file (plots embedded), and a short Markdown summary for the operators' group chat."""

from __future__ import annotations

import base64
import time
from pathlib import Path

from ...markup import html_escape, md_escape
from .collect import DailyStats

__all__ = ["render", "summary_markdown", "plots"]


def _t(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ms / 1000))


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ms(x) -> str:
    return "-" if x is None else f"{x:.1f} ms"


def plots(st: DailyStats, out_dir: Path) -> dict[str, Path]:
    """PNG plots: messages per hour, P50/P99 latency per hour, skill success, top intents."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    hours = [time.strftime("%H:00", time.gmtime(h["hour_ms"] / 1000)) for h in st.hourly]

    def save(fig, name: str) -> None:
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        files[name] = path

    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.bar(hours, [h["messages"] for h in st.hourly], color="#3b7dd8")
    ax.set_title("Messages per hour")
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    save(fig, "messages")

    fig, ax = plt.subplots(figsize=(8, 2.8))
    ax.plot(hours, [h["p50_ms"] or 0 for h in st.hourly], marker="o", label="P50")
    ax.plot(hours, [h["p99_ms"] or 0 for h in st.hourly], marker="o", label="P99")
    ax.set_ylabel("ms")
    ax.set_title("Latency per hour")
    ax.legend()
    ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    save(fig, "latency")

    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.35 * max(1, len(st.skills))))
    ax.barh([s.skill_id for s in st.skills], [100 * s.success_rate for s in st.skills])
    ax.set_xlim(0, 100)
    ax.set_xlabel("success %")
    ax.set_title("Skill success rate")
    save(fig, "skills")

    fig, ax = plt.subplots(figsize=(8, 0.6 + 0.35 * max(1, len(st.top_intents))))
    names = [i for i, _ in reversed(st.top_intents)]
    ax.barh(names, [n for _, n in reversed(st.top_intents)], color="#5aa469")
    ax.set_title("Top intents")
    save(fig, "intents")
    return files


def _tables(st: DailyStats, review_file: str | None) -> list[tuple[str, list[str], list[list]]]:
    key = [
        ["messages", st.messages],
        ["latency P50 / P99", f"{_ms(st.p50_ms)} / {_ms(st.p99_ms)}"],
        ["error rate", _pct(st.error_rate)],
        ["out-of-scope rate", _pct(st.oos_rate)],
        ["low-confidence answers", st.low_confidence],
        ["refused operator actions", st.denied],
        ["alerts", len(st.alerts)],
    ]
    if review_file:
        key.append(["utterances to label", review_file])
    skills = [[s.skill_id, s.calls, s.errors, _pct(s.success_rate)] for s in st.skills] or [
        ["-", 0, 0, "-"]
    ]
    intents = [[i, n] for i, n in st.top_intents] or [["-", 0]]
    res = [[k, v] for k, v in sorted(st.resources.items())] or [["(no metrics scrape)", "-"]]
    alerts = [
        [_t(a["ts_ms"]), a["operation"], a.get("object") or "", a.get("detail") or ""]
        for a in st.alerts
    ] or [["-", "none", "", ""]]
    outcomes = [[k, v] for k, v in sorted(st.outcomes.items())] or [["-", 0]]
    return [
        ("Key indicators", ["indicator", "value"], key),
        ("Skills", ["skill", "calls", "errors", "success"], skills),
        ("Top intents", ["intent", "messages"], intents),
        ("Outcomes", ["outcome", "messages"], outcomes),
        ("Resource use", ["resource", "value"], res),
        ("Alerts", ["time", "operation", "object", "detail"], alerts),
    ]


def _md_table(header: list[str], rows: list[list]) -> str:
    def cell(v) -> str:  # intent names, skill ids, alert details: text, never markup
        return md_escape(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def render(
    st: DailyStats, out_dir: Path, title: str, review_file: str | None = None
) -> tuple[Path, Path]:
    """Write ``report.md`` (+ PNGs) and ``report.html`` into ``out_dir``; returns both paths."""
    out_dir = Path(out_dir)
    images = plots(st, out_dir)
    period = f"{_t(st.since_ms)} – {_t(st.until_ms)}"
    md = [f"# {md_escape(title)}", "", f"Period: {period}", ""]
    for name, header, rows in _tables(st, review_file):
        md += [f"## {name}", "", _md_table(header, rows), ""]
    md += ["## Plots", ""] + [f"![{k}]({p.name})" for k, p in images.items()] + [""]
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(md), encoding="utf-8")

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html_escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "table{border-collapse:collapse;margin-bottom:1.5em}"
        "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}</style></head><body>",
        f"<h1>{html_escape(title)}</h1><p>Period: {html_escape(period)}</p>",
    ]
    for name, header, rows in _tables(st, review_file):
        parts.append(f"<h2>{html_escape(name)}</h2><table><tr>")
        parts += [f"<th>{html_escape(h)}</th>" for h in header]
        parts.append("</tr>")
        for r in rows:
            parts.append("<tr>" + "".join(f"<td>{html_escape(str(v))}</td>" for v in r) + "</tr>")
        parts.append("</table>")
    parts.append("<h2>Plots</h2>")
    for k, p in images.items():
        b64 = base64.b64encode(p.read_bytes()).decode()
        parts.append(f"<p><img alt='{k}' src='data:image/png;base64,{b64}'></p>")
    parts.append("</body></html>")
    html_path = out_dir / "report.html"
    html_path.write_text("".join(parts), encoding="utf-8")
    return md_path, html_path


def summary_markdown(st: DailyStats, title: str, where: str = "") -> str:
    """A short Markdown digest for a chat message (sampleMarkdown)."""
    lines = [
        f"### {md_escape(title)}",
        f"- 消息 messages: **{st.messages}**",
        f"- 延迟 latency P50 / P99: **{_ms(st.p50_ms)} / {_ms(st.p99_ms)}**",
        f"- 错误率 error rate: **{_pct(st.error_rate)}**; 未识别 out of scope: **{_pct(st.oos_rate)}**",
        f"- 低置信 low confidence: **{st.low_confidence}**; 告警 alerts: **{len(st.alerts)}**",
    ]
    worst = [s for s in st.skills if s.calls and s.success_rate < 0.99]
    for s in worst[:3]:
        lines.append(f"- ⚠ {md_escape(s.skill_id)}: success {_pct(s.success_rate)} of {s.calls}")
    if st.resources.get("memory_rss_mb"):
        lines.append(f"- 内存 memory: {st.resources['memory_rss_mb']} MB")
    if where:
        lines.append(f"- 报告 report: {md_escape(where)}")
    return "\n".join(lines)
