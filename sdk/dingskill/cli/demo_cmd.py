"""``dingskill demo``: the main job, end to end on embedded defaults.

Trains and exports the sample skills, installs them into a temporary home, starts the local
DingTalk emulator and ``dingskill run`` (SQLite storage, the real dingtalk-stream SDK), holds a
Chinese and English conversation (one multi-turn leave request, one group chat with an
@mention) and prints the transcript with intents and latencies."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SKILLS = ("hr-assistant", "faq-en")
CONVERSATION = [
    {"text": "你好，我想请个假", "sender_id": "staff-0001", "sender_nick": "王小明"},
    {"text": "年假", "sender_id": "staff-0001", "sender_nick": "王小明"},
    {"text": "下周一开始", "sender_id": "staff-0001", "sender_nick": "王小明"},
    {"text": "三天", "sender_id": "staff-0001", "sender_nick": "王小明"},
    {"text": "帮我订一个明天下午的会议室", "sender_id": "staff-0001", "sender_nick": "王小明"},
    {"text": "我这个月的工资条在哪看", "sender_id": "staff-0002", "sender_nick": "李娜"},
    {
        "text": "报销的钱什么时候到账",
        "sender_id": "staff-0002",
        "sender_nick": "李娜",
        "conversation_type": "group",
        "conversation_title": "产品部",
    },
    {"text": "hello there", "sender_id": "staff-0003", "sender_nick": "Alice"},
    {"text": "what are the office hours?", "sender_id": "staff-0003", "sender_nick": "Alice"},
    {"text": "明天北京会下雨吗", "sender_id": "staff-0002", "sender_nick": "李娜"},
]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the main job: train, export, install and chat through the runtime"
    )
    p.add_argument(
        "--workdir",
        default=None,
        help="keep the home, packages and logs here (default: a temp dir)",
    )
    p.add_argument(
        "--skills-dir",
        default=None,
        help="folder holding the example skills (default: the project's)",
    )
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the runtime")
    p.set_defaults(func=_demo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _step(n: int, text: str) -> None:
    print(f"\n[{n}] {text}", flush=True)


def _demo(args) -> int:
    from ..project import ProjectNotFound, find_project

    try:
        root = Path(args.skills_dir) if args.skills_dir else find_project() / "skills"
    except ProjectNotFound as exc:
        print(f"error: {exc}; or pass --skills-dir", file=sys.stderr)
        return 1
    if not all((root / s / "skill.yaml").exists() for s in SKILLS):
        print(f"error: example skills not found in {root}; pass --skills-dir")
        return 1
    work = Path(args.workdir or tempfile.mkdtemp(prefix="dingskill-demo-"))
    code = 1
    try:
        code = _run_demo(args, root, work)
    finally:
        if args.workdir is None and code == 0:
            shutil.rmtree(work, ignore_errors=True)  # the temp home, packages and logs
        elif args.workdir is None:
            print(f"kept {work} (runtime log, packages) to look at; remove it when done")
    if code == 0:
        print(NEXT_STEPS)
    return code


NEXT_STEPS = """
next steps:
  dingskill chat skills/hr-assistant skills/faq-en   talk to the skills in your terminal
  make lab                                           the notebooks: label, train, evaluate, chat
  dingskill demo --workdir demo-run                  keep the home, packages and runtime log
  README "Run on DingTalk"                           your own app: export, install, doctor, run"""


def _run_demo(args, root: Path, work: Path) -> int:
    from ..emulator import Emulator
    from ..skills import Skill, SkillError
    from ..skills.packaging import PackageError, SkillHome

    home, dist = work / "home", work / "dist"
    home.mkdir(parents=True, exist_ok=True)

    _step(1, "train, evaluate and export the sample skills")
    packages = []
    for name in SKILLS:
        try:
            skill = Skill.load(root / name)
            t0 = time.perf_counter()
            skill.train()
            ev = skill.evaluate().summary
            pkg = skill.export(dist)
        except (SkillError, PackageError) as exc:
            print(f"error: {name}: {exc}")
            return 1
        packages.append(pkg)
        print(
            f"    {skill.manifest.id} {skill.manifest.version}: trained in {time.perf_counter() - t0:.1f} s, "
            f"held-out accuracy {ev['accuracy']:.1%} (in-scope {ev['in_scope_accuracy']:.1%}, "
            f"out-of-scope recall {ev['oos_recall']:.1%}) -> {pkg.name}"
        )

    _step(2, f"install the packages into {home}")
    skill_home = SkillHome(home)
    for pkg in packages:
        try:
            info = skill_home.install(pkg)
        except PackageError as exc:
            print(f"error: {exc}")
            return 1
        print(f"    installed {info.id} {info.version} ({info.signature}, RECORD verified)")

    _step(3, "start the local DingTalk emulator and the runtime (SQLite, real dingtalk-stream SDK)")
    emu = Emulator({"dingdemoappkey": "demo-app-secret"}, ack_timeout=5.0)
    url = emu.start()
    port = _free_port()
    config = {
        "server": {"port": port},
        "storage": {"type": "sqlite"},
        "channels": {"enterprise_chat": {"mode": "stream", "endpoint": url}},
        "skills": {"home": str(home)},
    }
    cfg_path = work / "runtime.json"
    cfg_path.write_text(json.dumps(config, indent=2))
    env = {
        **os.environ,
        "DINGSKILL_APP_KEY": "dingdemoappkey",
        "DINGSKILL_APP_SECRET": "demo-app-secret",
        "DINGSKILL_HOME": str(home),
    }
    log_path = work / "runtime.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dingskill.cli.main", "run", "--config", str(cfg_path)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_path.open("w"),
    )
    try:
        try:
            emu.wait_connections(1, timeout=args.timeout)
        except TimeoutError:
            print(f"error: the runtime did not connect within {args.timeout:g} s; see {log_path}")
            return 1
        print(
            f"    emulator {url}; runtime pid {proc.pid} connected over Stream mode; metrics on :{port}"
        )

        _step(4, "conversation (user -> bot, with the intent the runtime chose)")
        sent = []
        for turn in CONVERSATION:
            fields = {k: v for k, v in turn.items() if k != "text"}
            msg_id = emu.send(turn["text"], **fields)
            body = emu.wait_reply(msg_id, timeout=15)
            sent.append((turn, msg_id, body))
        audit = _audit_by_msg(
            home / "audit" / "messages.jsonl", {m for _, m, _ in sent}, timeout=10
        )
        for turn, msg_id, body in sent:
            m = emu.message(msg_id)
            latency = m["replies"][0]["at_ms"] - m["pushed_ms"]
            rec = audit.get(msg_id, {})
            chat = "group" if turn.get("conversation_type") == "group" else "1:1"
            print(f"  {turn['sender_nick']} ({chat}): {turn['text']}")
            for line in _reply_text(body).splitlines():
                print(f"      bot: {line}")
            print(
                f"      [{rec.get('intent', '?')} via {rec.get('source', '?')} | skill {rec.get('object', '?')} | "
                f"{latency} ms push->reply]"
            )

        _step(5, "what the runtime reports")
        from .. import http_sync

        metrics = http_sync.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        ready = http_sync.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
        for line in metrics.splitlines():
            if line.startswith(("dingskill_messages_total{", "dingskill_skills_loaded ")):
                print("    " + line)
        print(f"    /readyz: {ready}")
        stats = emu.stats()
        print(
            f"    emulator: {stats['messages']} messages, {stats['answered']} answered, "
            f"{stats['duplicated']} answered twice, {stats['unacked']} un-ACKed"
        )
    finally:
        proc.terminate()
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        emu.stop()
    kept = f"; files in {work}" if args.workdir else ""
    _step(6, f"runtime stopped gracefully (exit code {code}){kept}")
    ok = stats["answered"] == len(CONVERSATION) and stats["duplicated"] == 0 and code == 0
    print("\ndemo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def _reply_text(body: dict) -> str:
    kind = body.get("msgtype")
    if kind == "text":
        return body["text"]["content"]
    if kind == "markdown":
        return body["markdown"]["text"]
    if kind == "actionCard":
        return body["actionCard"]["text"]
    return json.dumps(body, ensure_ascii=False)


def _audit_by_msg(path: Path, wanted: set[str], timeout: float) -> dict:
    """The runtime's audit records of ``wanted`` messages (written in batches: wait for them)."""
    from ..security.audit_chain import AuditChain

    deadline = time.monotonic() + timeout
    found: dict = {}
    while time.monotonic() < deadline:
        if path.exists():
            found = {
                r.get("msg_id"): r for r in AuditChain(path).records() if r.get("msg_id") in wanted
            }
            if len(found) == len(wanted):
                break
        time.sleep(0.05)
    return found
