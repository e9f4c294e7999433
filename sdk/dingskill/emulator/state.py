"""The emulator's records: apps, connections, pushed frames, and how robot messages are delivered."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from enum import Enum

__all__ = [
    "DEFAULT_SCOPES",
    "TICKET_TTL_S",
    "WEBHOOK_TTL_MS",
    "App",
    "Conn",
    "Delivery",
    "PushKind",
    "RobotDelivery",
    "now_ms",
]

# The protocol page: "ticket的有效期为90秒且只能用来建立一条连接".
TICKET_TTL_S = 90
# The protocol page's sample message: sessionWebhookExpiredTime - createAt = 5,400,258 ms (90 min).
WEBHOOK_TTL_MS = 90 * 60 * 1000

# Scopes an app holds unless configured otherwise (``Emulator(scopes={...})``).
DEFAULT_SCOPES = frozenset({"qyapi_robot_sendmsg", "Card.Instance.Write", "Card.Streaming.Write"})


def now_ms() -> int:
    return int(time.time() * 1000)


def clock_ns() -> int:
    """A monotonic nanosecond clock for latency figures: the platform's own timestamps are
    whole milliseconds, too coarse for a p99 of a few ms."""
    return time.perf_counter_ns()


class RobotDelivery(str, Enum):
    """How robot messages are delivered.

    ``ONCE`` (default) is the documented behaviour: the FAQ of the protocol page says robot
    messages are fire-and-forget ("机器人消息当前是fire-forgot模式，不会因为网络超时而重复推送")
    and their ACK is diagnostic only. ``UNTIL_ACK`` is what the Node SDK's comment describes
    (``socketCallBackResponse``: un-ACKed messages are pushed again "within 60 s"): a message not
    ACKed with code 200 within ``ack_timeout`` is pushed again, to another connection of the app
    when there is one; messages sent while no connection is up wait for one.
    """

    ONCE = "once"
    UNTIL_ACK = "until_ack"


class PushKind(str, Enum):
    ROBOT = "robot"
    EVENT = "event"
    CARD_CALLBACK = "card_callback"
    GRAPH = "graph"


@dataclass
class App:
    """An app (client id / secret) allowed to connect, with its robot and its granted scopes."""

    client_id: str
    secret: str
    scopes: set[str] = field(default_factory=lambda: set(DEFAULT_SCOPES))
    bot_name: str = "办公助手"
    corp_id: str = "ding-emulator-corp"
    unified_app_id: str = ""
    users: set[str] = field(default_factory=set)  # staff ids of the organisation
    groups: set[str] = field(default_factory=set)  # open conversation ids the robot is in
    off_duty: dict | None = None  # the robot's off-duty prompt template, when one was set

    @property
    def robot_code(self) -> str:
        """The platform sets ``robotCode`` to the app's client id (AppKey)."""
        return self.client_id


@dataclass
class Conn:
    id: str
    app: str
    ws: object
    opened_ms: int
    subscriptions: list[dict] = field(default_factory=list)
    ua: str = ""
    sent: int = 0
    acks: int = 0
    closed: bool = False
    closing: bool = False  # a disconnect was sent: nothing new is pushed to it
    closed_by: str = ""  # "client" | "server"
    disconnect_reason: str = ""
    pings: dict[str, str] = field(default_factory=dict)  # frame id -> opaque, awaiting echo
    pongs: int = 0
    bad_pongs: int = 0

    def subscribed(self, ftype: str, topic: str) -> bool:
        return any(
            s.get("type") == ftype and s.get("topic") in (topic, "*") for s in self.subscriptions
        )


@dataclass
class Delivery:
    """One pushed item: a robot message, an event, a card callback or a graph request."""

    msg_id: str
    frame_id: str
    app: str
    payload: dict
    created_ms: int
    kind: PushKind = PushKind.ROBOT
    topic: str = ""
    pushed_ms: int = 0
    pushed_ns: int = 0  # clock_ns() of the first push (latency figures; not on the wire)
    attempts: int = 0
    acked: bool = False
    ack_code: int | None = None
    ack_data: object = None
    ack_status: str | None = None  # events: SUCCESS | LATER (from the ACK's data)
    conn_id: str = ""
    not_pushed: str = ""  # why the platform did not push it (no subscriber, offline, ...)
    offline_prompt: dict | None = None  # what the user saw instead, when the bot was offline
    replies: list = field(default_factory=list)
    event: threading.Event = field(default_factory=threading.Event)
    raw: str | None = None  # a raw (possibly malformed) frame body for fault tests
    meta: dict = field(default_factory=dict)  # event headers, card id, ...
