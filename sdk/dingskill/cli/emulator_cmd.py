"""``dingskill emulator``: run the local DingTalk emulator, send it messages, read replies."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("emulator", help="a local DingTalk Stream emulator")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=9000, help="port to listen on (default 9000)")
    p.add_argument(
        "--app",
        action="append",
        default=None,
        metavar="KEY:SECRET",
        help="an app allowed to connect (default dingemulatorkey:emulator-secret)",
    )
    p.add_argument(
        "--ack-timeout",
        type=float,
        default=5.0,
        help="seconds before an un-ACKed event (or, with --robot-delivery until_ack, robot "
        "message) is pushed again",
    )
    p.add_argument(
        "--robot-delivery",
        choices=["once", "until_ack"],
        default="once",
        help="robot messages pushed once (documented, default) or again until ACKed",
    )
    p.add_argument(
        "--ping-interval", type=float, default=30.0, help="seconds between server pings (0: off)"
    )
    p.add_argument(
        "--disconnect-close-delay",
        type=float,
        default=10.0,
        help="seconds after a SYSTEM disconnect before the server closes the socket",
    )
    p.add_argument(
        "--card-template",
        action="append",
        default=[],
        metavar="ID",
        help="a card template id that exists (besides the SDKs' built-in ones); repeatable",
    )
    p.add_argument(
        "--org-user",
        action="append",
        default=[],
        metavar="STAFF_ID",
        help="a staff id of the organisation (proactive messages and cards accept only those)",
    )
    p.add_argument(
        "--robot-group",
        action="append",
        default=[],
        metavar="OPEN_CONVERSATION_ID",
        help="a group the robot is in",
    )
    p.add_argument(
        "--qps-limit",
        type=int,
        default=20,
        help="OpenAPI calls per second each app may make to each API (documented: 20; 0: off)",
    )
    p.add_argument(
        "--expired-webhook-errcode",
        type=int,
        choices=[300001, 300002],
        default=300001,
        help="errcode of an expired session webhook (300001 'session 不存在' as the platform "
        "answers; 300002 the older reading)",
    )
    p.set_defaults(func=_serve)
    s = p.add_subparsers(dest="emulator", metavar="ACTION")
    send = s.add_parser("send", help="push a user message into a running emulator")
    send.add_argument("text", help="the message text")
    send.add_argument("--url", default="http://127.0.0.1:9000", help="the running emulator")
    send.add_argument("--sender", default="user-0001", help="sender staff id")
    send.add_argument("--group", action="store_true", help="send as a group chat message")
    send.add_argument(
        "--msgtype",
        default="text",
        choices=["text", "richText", "picture", "audio", "video", "file", "unknownMsgType"],
        help="message type (audio: TEXT is the recognition; file/picture/video: TEXT is ignored)",
    )
    send.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the reply")
    send.add_argument(
        "--wait-for-bot",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to SECONDS for the emulator to listen and a bot to connect "
        "(for scripts that start both in the background)",
    )
    send.set_defaults(func=_send)
    ev = s.add_parser("event", help="push an EVENT (re-pushed until ACKed with SUCCESS)")
    ev.add_argument("event_type", help="e.g. chat_add_member")
    ev.add_argument("--data", default="{}", help="the event's data, a JSON object")
    ev.add_argument("--url", default="http://127.0.0.1:9000", help="the running emulator")
    ev.set_defaults(func=_event)
    rep = s.add_parser("replies", help="print the recorded messages and replies")
    rep.add_argument("--url", default="http://127.0.0.1:9000", help="the running emulator")
    rep.set_defaults(func=_replies)


def _serve(args) -> int:
    from ..emulator import Emulator

    apps = {}
    for item in args.app or ["dingemulatorkey:emulator-secret"]:
        key, sep, secret = item.partition(":")
        if not sep or not key or not secret:
            print(f"error: --app {item!r}: expected KEY:SECRET")
            return 2
        apps[key] = secret
    emu = Emulator(
        apps,
        host=args.host,
        port=args.port,
        ack_timeout=args.ack_timeout,
        robot_delivery=args.robot_delivery,
        ping_interval=args.ping_interval,
        disconnect_close_delay=args.disconnect_close_delay,
        card_templates=args.card_template,
        qps_limit=args.qps_limit,
        expired_webhook_errcode=args.expired_webhook_errcode,
    )
    for key in apps:
        emu.register(key, users=args.org_user, groups=args.robot_group)
    try:
        url = emu.start()
    except (RuntimeError, OSError) as exc:
        print(
            f"error: the emulator cannot listen on {args.host}:{args.port} ({exc}): "
            "is another one running? pick another --port",
            file=sys.stderr,
        )
        return 1
    print(f"DingTalk emulator on {url}; export DINGTALK_OPENAPI_ENDPOINT={url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    emu.stop()
    return 0


def _wait_for_bot(c, seconds: float) -> str | None:
    """None once the emulator answers and an app has a live connection, else the reason."""
    import time

    from ..http_sync import HttpError

    deadline = time.monotonic() + seconds
    reason = "no answer"
    while time.monotonic() < deadline:
        try:
            if any(c.stats()["connections"].values()):
                return None
            reason = "no bot connected"
        except (HttpError, ValueError):
            reason = "the emulator does not answer"
        time.sleep(0.2)
    return reason


def _send(args) -> int:
    from ..emulator import EmulatorClient

    with EmulatorClient(args.url) as c:
        if args.wait_for_bot > 0:
            reason = _wait_for_bot(c, args.wait_for_bot)
            if reason:
                print(f"error: {args.url}: {reason} within {args.wait_for_bot:g} s")
                return 1
        fields = {"recognition": args.text} if args.msgtype == "audio" else {}
        msg_id = c.send(
            args.text,
            sender_id=args.sender,
            conversation_type="group" if args.group else "single",
            msgtype=args.msgtype,
            **fields,
        )
        try:
            body = c.wait_reply(msg_id, args.wait)
        except TimeoutError as exc:
            print(f"error: {exc}")
            return 1
    print(json.dumps(body, ensure_ascii=False))
    return 0


def _replies(args) -> int:
    from ..emulator import EmulatorClient

    with EmulatorClient(args.url) as c:
        for m in c.replies():
            print(json.dumps(m, ensure_ascii=False))
    return 0


def _event(args) -> int:
    from ..emulator import EmulatorClient

    try:
        data = json.loads(args.data)
    except ValueError as exc:
        print(f"error: --data is not JSON: {exc}")
        return 2
    if not isinstance(data, dict):
        print("error: --data must be a JSON object")
        return 2
    with EmulatorClient(args.url) as c:
        push_id = c.push_event(args.event_type, data)
    print(push_id)
    return 0
