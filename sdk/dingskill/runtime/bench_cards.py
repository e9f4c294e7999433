"""``dingskill bench runtime --ai-cards``: the runtime answering in AI cards at the platform's
per-app per-API call limit.

Every text reply of the example skills goes out as an AI card (both hold
``Card.Streaming.Write``): create, deliver, stream, finish — four OpenAPI calls, each API
limited by the emulator to ``qps_limit`` calls a second per app (the documented 20). Each
message comes from its own sender, so each card is matched to its message by the space it
was delivered to. Reported: ``msgs_per_s`` (answered a second), ``p50_ms`` / ``p99_ms``
(push to the card's finish, or to the webhook reply for non-card answers), ``lost`` (no
answer), ``duplicated`` (more than one answer: a card and a text, two cards, ...),
``unfinished_cards`` (delivered, never finished), ``throttled`` (calls the emulator refused
with ``QpsLimitForAppkeyAndApi``, which the runtime retried)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .benchmark import _free_port, _pct, _stop, _texts

__all__ = ["run_ai_card_benchmark"]

APP = ("dingbenchcards", "bench-cards-secret")
TEMPLATE = "bench-ai-card.schema"


def _export_with_cards(root: Path, name: str, work: Path) -> Path:
    """The example skill with ``Card.Streaming.Write`` added to its permissions."""
    from ..skills import Skill

    src = work / "src"
    if not (src / "datasets").exists():
        src.mkdir(parents=True, exist_ok=True)
        (src / "datasets").symlink_to(root / "datasets")
    dst = src / "skills" / name
    shutil.copytree(root / "skills" / name, dst)
    y = dst / "skill.yaml"
    text = y.read_text(encoding="utf-8")
    y.write_text(text.replace("permissions: [", "permissions: [Card.Streaming.Write, ", 1))
    return Skill.load(dst).export(work / "dist")


def _answers(emu, msg_ids: list[str]) -> dict[str, list]:
    """msg id -> its answers: ("card", card) per card delivered to its sender, ("text", reply)."""
    by_user: dict[str, list] = {}
    for card in list(emu.cards.values()):
        for d in card.get("deliveries", []):
            space = str(d["body"].get("openSpaceId", ""))
            if space.startswith("dtv1.card//IM_ROBOT.") and any(r["success"] for r in d["results"]):
                by_user.setdefault(space.removeprefix("dtv1.card//IM_ROBOT."), []).append(card)
    out = {}
    for m in msg_ids:
        d = emu.messages[m]
        user = d.payload.get("senderStaffId", "")
        out[m] = [("card", c) for c in by_user.get(user, [])] + [("text", r) for r in d.replies]
    return out


def _finished(card: dict) -> bool:
    return card["cardData"]["cardParamMap"].get("flowStatus") == "3"


def run_ai_card_benchmark(
    messages: int = 200,
    rate: float = 200.0,
    qps_limit: int = 20,
    replicas: int = 1,
    project=None,
    progress: bool = True,
    wait_s: float | None = None,
) -> dict:
    """Offer ``messages`` messages at ``rate`` a second to ``replicas`` runtime(s) answering
    in AI cards, the emulator holding each API to ``qps_limit`` calls a second; the runtimes
    share it (``openapi_qps`` = ``qps_limit / replicas``)."""
    from ..emulator import Emulator
    from ..project import find_project
    from ..skills.packaging import SkillHome

    root = find_project(project)
    work = Path(tempfile.mkdtemp(prefix="dingskill-bench-cards-"))
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if progress else (lambda *a: None)
    emu = Emulator({APP[0]: APP[1]}, card_templates=[TEMPLATE], qps_limit=qps_limit)
    procs: list[subprocess.Popen] = []
    try:
        home = SkillHome(work / "home")
        for name in ("hr-assistant", "faq-en"):
            home.install(_export_with_cards(root, name, work))
        url = emu.start()
        env = {**os.environ, "DINGSKILL_APP_KEY": APP[0], "DINGSKILL_APP_SECRET": APP[1]}
        storage = {"type": "sqlite", "path": str(work / "runtime.db")}
        if replicas > 1:
            raise ValueError("--ai-cards runs one replica (SQLite); use --replicas 1")
        cfg = {
            "server": {"port": _free_port()},
            "storage": storage,
            "channels": {
                "enterprise_chat": {
                    "mode": "stream",
                    "endpoint": url,
                    "openapi_qps": qps_limit / replicas,
                }
            },
            "skills": {"home": str(work / "home")},
            "limits": {"user_per_minute": 0, "conversation_per_minute": 0, "global_per_second": 0},
            "cards": {"ai_template_id": TEMPLATE},
            "audit": {"path": str(work / "audit" / "messages.jsonl")},
            "logging": {"level": "WARNING"},
        }
        p = work / "runtime.json"
        p.write_text(json.dumps(cfg))
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(p)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=(work / "runtime.log").open("w"),
            )
        )
        emu.wait_connections(1, timeout=60)
        texts = _texts(root)
        say(f"bench[ai-cards]: {messages} messages at {rate:g}/s, OpenAPI limit {qps_limit}/s")
        t0 = time.perf_counter()
        ids = []
        for i in range(messages):
            due = t0 + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            ids.append(emu.send(texts[i % len(texts)], sender_id=f"card-user-{i}"))
        # four calls per card, each API at the limit: allow twice that, plus a minute
        limit = wait_s if wait_s is not None else 60 + 2 * messages / max(qps_limit * 0.9, 1)

        def settled() -> bool:
            got = _answers(emu, ids)
            return all(a and all(_finished(c) for k, c in a if k == "card") for a in got.values())

        try:
            emu.wait_for(settled, timeout=limit)
        except TimeoutError:
            say(f"bench[ai-cards]: not every message settled within {limit:.0f} s")
        elapsed = time.perf_counter() - t0
        answers = _answers(emu, ids)
        lat, cards = [], []
        for m, got in answers.items():
            d = emu.messages[m]
            cards += [c for k, c in got if k == "card"]
            ends = [c.get("updated_ms") for k, c in got if k == "card" and _finished(c)]
            ends += [r["at_ms"] for k, r in got if k == "text"]
            if ends and all(e is not None for e in ends):
                lat.append(min(ends) - d.pushed_ms)
        answered = sum(1 for a in answers.values() if a)
        return {
            "ai_cards": True,
            "msgs_per_s": round(answered / elapsed, 1),
            "p50_ms": _pct(lat, 0.50),
            "p99_ms": _pct(lat, 0.99),
            "lost": sum(1 for a in answers.values() if not a),
            "duplicated": sum(1 for a in answers.values() if len(a) > 1),
            "unfinished_cards": sum(1 for c in cards if not _finished(c)),
            "cards": len(cards),
            "text_replies": sum(1 for a in answers.values() for k, _ in a if k == "text"),
            "throttled": emu.counters["qps_limited"],
            "openapi_calls": emu.counters["openapi"],
            "qps_limit": qps_limit,
            "messages": messages,
            "offered_rate": rate,
            "seconds": round(elapsed, 1),
        }
    finally:
        _stop(procs)
        emu.stop()
        if not os.environ.get("DINGSKILL_BENCH_KEEP"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"bench[ai-cards]: kept {work}")
