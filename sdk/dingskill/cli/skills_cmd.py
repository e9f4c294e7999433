"""``dingskill schema skill|conversations|config``, ``dingskill skills validate|train`` and ``dingskill chat``."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("schema", help="print a published JSON Schema")
    s.add_argument(
        "which",
        choices=["skill", "conversations", "config"],
        help="skill: skill.yaml; conversations: one line of a regression-case .jsonl file; "
        "config: the runtime configuration (dingskill run --config)",
    )
    s.set_defaults(func=_schema)
    sk = sub.add_parser("skills", help="check and train skill source folders")
    ss = sk.add_subparsers(dest="skills", metavar="ACTION", required=True)
    v = ss.add_parser("validate", help="validate skill.yaml (errors name file, line and field)")
    v.add_argument("path", help="a skill folder or its skill.yaml")
    v.set_defaults(func=_validate)
    t = ss.add_parser("train", help="train a skill and print its evaluation")
    t.add_argument("path", help="a skill source folder")
    t.set_defaults(func=_train)
    n = sub.add_parser("new", help="start a skill folder from a template (faq, form, api-lookup)")
    n.add_argument("name", help="folder name, e.g. visitor-desk")
    n.add_argument(
        "--template",
        default="faq",
        choices=["faq", "form", "api-lookup"],
        help="starter kind (default faq)",
    )
    n.add_argument("--lang", default="zh", choices=["zh", "en"], help="language of the starter")
    n.add_argument("--id", default=None, help="skill id (default com.example.NAME)")
    n.add_argument("--title", default=None, help="display name (default NAME)")
    n.add_argument("--author", default="", help="author written into skill.yaml")
    n.add_argument("-C", "--directory", default=".", help="where to create the folder")
    n.set_defaults(func=_new)
    c = sub.add_parser("chat", help="talk to skills in the terminal (reads lines from stdin)")
    c.add_argument("paths", nargs="*", help="skill folders (default: the installed skills)")
    c.add_argument(
        "--sender", default=None, help="sender id in the conversation (default: the OS user)"
    )
    c.add_argument(
        "--nick", default=None, help="your name in replies (default: the OS user's name)"
    )
    c.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="runtime configuration whose arbitration / handover / reply language apply",
    )
    c.add_argument("--conversation", default="terminal", help="conversation id")
    c.add_argument("--group", action="store_true", help="behave as a group chat")
    c.add_argument(
        "--at", action="append", default=[], metavar="ID", help="a user id the message @mentions"
    )
    c.add_argument(
        "--json", action="store_true", help="one JSON object per reply (intent, slots, ...)"
    )
    c.set_defaults(func=_chat)


def _schema(args) -> int:
    if args.which == "config":
        from ..runtime.settings import config_schema

        print(json.dumps(config_schema(), indent=2, ensure_ascii=False))
        return 0
    if args.which == "conversations":
        from ..notebook.regression import cases_schema

        print(json.dumps(cases_schema(), indent=2, ensure_ascii=False))
        return 0
    from ..skills import schema

    print(json.dumps(schema(), indent=2, ensure_ascii=False))
    return 0


def _new(args) -> int:
    from ..skills import SkillError
    from ..skills.starters import new_skill

    try:
        path = new_skill(
            args.name, args.template, args.lang, args.directory, args.id, args.title, args.author
        )
    except SkillError as exc:
        print(f"error: {exc}")
        return 1
    print(f"created {path} ({args.template}, {args.lang}). Next:")
    print(f"  dingskill skills train {path}")
    print(f"  dingskill chat {path}")
    print(f"  dingskill export {path} -o dist")
    return 0


def _validate(args) -> int:
    from ..skills import ManifestError, load_manifest

    try:
        m = load_manifest(args.path)
    except ManifestError as exc:
        for p in exc.problems:
            print(p)
        return 1
    print(f"{m.id} {m.version}: {len(m.intents)} intents, valid")
    return 0


def _train(args) -> int:
    from ..skills import Skill, SkillError

    try:
        skill = Skill.load(args.path)
        skill.train()
        ev = skill.evaluate()
    except SkillError as exc:
        print(f"error: {exc}")
        return 1
    print(f"{skill.manifest.id} {skill.manifest.version}")
    for k, v in ev.summary.items():
        print(f"  {k:<18} {v:.3f}" if isinstance(v, float) else f"  {k:<18} {v}")
    return 0


def _chat(args) -> int:
    from ..runtime.terminal import chat, default_sender
    from ..skills import Skill, SkillError
    from ..skills.packaging import SkillHome

    try:
        skills = [Skill.load(p) for p in args.paths] if args.paths else SkillHome().load_skills()
    except SkillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not skills:
        print(
            "no skills: pass skill folders or install packages (dingskill plugins install)",
            file=sys.stderr,
        )
        return 1
    options = None
    if args.config:
        from ..runtime.config import ConfigError, load_config
        from ..runtime.skills_loader import arbitration_options

        try:
            options = arbitration_options(load_config(args.config).data)
        except (ConfigError, OSError) as exc:
            print(f"error: {args.config}: {exc}", file=sys.stderr)
            return 2
    interactive = sys.stdin.isatty()
    if interactive and not args.json:
        print("chatting with " + ", ".join(s.manifest.id for s in skills) + " (Ctrl-D to quit)")
    me = default_sender()
    chat(
        skills,
        sys.stdin,
        sys.stdout,
        sender_id=args.sender or me,
        sender_nick=args.nick if args.nick is not None else me,
        prompt="you> " if interactive and not args.json else "",
        options=options,
        conversation_id=args.conversation,
        group=args.group,
        at_users=args.at,
        echo=not interactive,
        as_json=args.json,
    )
    return 0
