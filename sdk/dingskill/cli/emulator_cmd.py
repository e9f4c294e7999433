"""``dingskill emulator``: run the local DingTalk emulator, send it messages, read replies."""

from __future__ import annotations

import argparse
import json
import signal
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
        help="seconds before an unacknowledged event is redelivered (default 5)",
    )
    p.set_defaults(func=_serve)
    s = p.add_subparsers(dest="emulator", metavar="ACTION")
    send = s.add_parser("send", help="push a user message into a running emulator")
    send.add_argument("text", help="the message text")
    send.add_argument("--url", default="http://127.0.0.1:9000", help="the running emulator")
    send.add_argument("--sender", default="user-0001", help="sender staff id")
    send.add_argument("--group", action="store_true", help="send as a group chat message")
    send.add_argument("--wait", type=float, default=10.0, help="seconds to wait for the reply")
    send.set_defaults(func=_send)
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
    emu = Emulator(apps, host=args.host, port=args.port, ack_timeout=args.ack_timeout)
    url = emu.start()
    print(f"DingTalk emulator on {url}; export DINGTALK_OPENAPI_ENDPOINT={url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    emu.stop()
    return 0


def _send(args) -> int:
    from ..emulator import EmulatorClient

    with EmulatorClient(args.url) as c:
        msg_id = c.send(
            args.text, sender_id=args.sender, conversation_type="group" if args.group else "single"
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
