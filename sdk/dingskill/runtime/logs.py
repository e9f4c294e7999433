"""Structured JSON logs with secrets redacted: the project's compact shape (``json``), or
Elastic Common Schema field names (``ecs``) for an ELK stack (Filebeat ships the file as it
is; see ``deploy/filebeat/filebeat.yml``)."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time

from ..security.redact import Redactor

__all__ = ["setup_logging", "log_path", "JsonFormatter", "EcsFormatter", "FORMATS"]

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
FORMATS = ("json", "ecs")
ECS_VERSION = "8.11.0"
# extra fields the runtime logs with that have an ECS home; the rest go under "dingskill.*"
_ECS_FIELDS = {
    "msg_id": "trace.id",
    "trace_id": "trace.id",
    "transaction_id": "transaction.id",
    "conversation": "dingskill.conversation",
    "action": "event.action",
    "outcome": "event.outcome",
    "category": "event.category",
    "duration_ms": "event.duration",
    "actor": "user.id",
    "sender_id": "user.id",
    "client_ip": "client.ip",
    "port": "server.port",
    "error": "error.message",
}


def _timestamp(record: logging.LogRecord) -> str:
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        + f".{int(record.msecs):03d}Z"
    )


def _extras(record: logging.LogRecord) -> dict:
    return {k: v for k, v in record.__dict__.items() if k not in _STD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(_extras(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return self.redactor.text(
            json.dumps(self.redactor.data(out), ensure_ascii=False, default=str)
        )


class EcsFormatter(logging.Formatter):
    """One ECS document per line: ``@timestamp``, ``log.level``, ``log.logger``, ``message``,
    ``ecs.version``, ``service.name``, ``event.dataset``, ``process.pid``, ``host.hostname``,
    ``trace.id`` (the message id), ``event.action``/``event.outcome``, ``error.*``; other
    fields under ``dingskill.*``. Dotted keys, as Filebeat's ``expand_keys`` expects."""

    def __init__(self, redactor: Redactor, service_name: str = "dingskill") -> None:
        super().__init__()
        self.redactor = redactor
        self.service = service_name
        self.host = socket.gethostname()

    def format(self, record: logging.LogRecord) -> str:
        out: dict = {
            "@timestamp": _timestamp(record),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
            "ecs.version": ECS_VERSION,
            "service.name": self.service,
            "event.dataset": f"{self.service}.log",
            "event.kind": "event",
            "process.pid": os.getpid(),
            "host.hostname": self.host,
        }
        for key, value in _extras(record).items():
            field = _ECS_FIELDS.get(key, f"dingskill.{key}")
            if field == "event.duration" and isinstance(value, int | float):
                value = int(value * 1_000_000)  # ECS durations are nanoseconds
            out.setdefault(field, value)
        if record.exc_info:
            exc_type = record.exc_info[0]
            out["error.type"] = exc_type.__name__ if exc_type else "Exception"
            out.setdefault("error.message", str(record.exc_info[1]))
            out["error.stack_trace"] = self.formatException(record.exc_info)
        return self.redactor.text(
            json.dumps(self.redactor.data(out), ensure_ascii=False, default=str)
        )


def log_path(path: str) -> str:
    """``path`` with ``{hostname}`` replaced by this host's name."""
    return path.replace("{hostname}", socket.gethostname())


def setup_logging(
    level: str,
    redactor: Redactor,
    path: str | None = None,
    fmt: str = "json",
    service_name: str = "dingskill",
) -> None:
    """Send every log record to ``path`` (or stderr) as one JSON object per line; ``{hostname}``
    in ``path`` becomes this host's name (one file per replica on a shared volume)."""
    if path:
        from pathlib import Path

        path = log_path(path)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        EcsFormatter(redactor, service_name) if fmt == "ecs" else JsonFormatter(redactor)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
