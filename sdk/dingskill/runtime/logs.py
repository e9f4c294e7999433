"""Structured JSON logs with secrets redacted."""

from __future__ import annotations

import json
import logging
import sys
import time

from ..security.redact import Redactor

__all__ = ["setup_logging", "JsonFormatter"]

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(
            {k: v for k, v in record.__dict__.items() if k not in _STD and not k.startswith("_")}
        )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return self.redactor.text(
            json.dumps(self.redactor.data(out), ensure_ascii=False, default=str)
        )


def setup_logging(level: str, redactor: Redactor, path: str | None = None) -> None:
    handler = logging.FileHandler(path) if path else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(redactor))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "uvicorn.access", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
