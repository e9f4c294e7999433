"""Handlers of the IT help-desk skill (run only when the skill is trusted)."""

from __future__ import annotations

import re

_HAN = re.compile(r"[\u3400-\u9fff]")


def password_reset(message: dict, slots: dict, context: dict) -> dict:
    """Where the sender resets a password (the example skill creates no reset link itself:
    the self-service portal checks who the user is); in English when the message has no
    Chinese in it."""
    if not _HAN.search(message.get("text", "")):
        return {
            "format": "markdown",
            "title": "Reset password",
            "text": "### Reset password\nOpen the IT self-service portal → Reset password "
            "(https://it.example.com/reset), verify yourself by scanning the DingTalk code, "
            "then set a new password.\nFor a forgotten DingTalk login password, tap "
            '"Forgot password" on the DingTalk login screen.',
        }
    return {
        "format": "markdown",
        "title": "重置密码",
        "text": "### 重置密码\n请打开「IT 自助门户 → 重置密码」（https://it.example.com/reset），"
        "用钉钉扫码验证身份后设置新密码。\n忘记了钉钉登录密码请在钉钉登录页点「忘记密码」。",
    }
