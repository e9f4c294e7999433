"""Handlers of the IT help-desk skill (run only when the skill is trusted)."""

from __future__ import annotations

import hashlib


def password_reset(message: dict, slots: dict, context: dict) -> dict:
    """A one-time self-service link for the sender (demo: derived from the sender id)."""
    code = hashlib.sha256(f"reset:{message['sender_id']}".encode()).hexdigest()[:8]
    return {
        "format": "markdown",
        "title": "重置密码",
        "text": f"### 重置密码\n请在 30 分钟内打开自助链接：[重置密码](https://it.example.com/reset/{code})\n"
        "链接只对您本人有效。",
    }
