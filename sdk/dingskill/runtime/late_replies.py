"""Skills whose replies may come late, and the permission those late replies need.

A response that calls an HTTP API or runs a handler can take long enough to outlive the
message's session webhook (or meet a webhook the platform no longer knows: errcode 300001);
the reply then goes through the robot OpenAPI, which needs ``qyapi_robot_sendmsg``. Without
it the reply reaches nobody (recorded as ``undelivered (no_permission)``). ``dingskill
doctor`` and the skill loader warn about such skills ahead of time."""

from __future__ import annotations

from ..skills.notify import PERMISSION

__all__ = ["late_reply_warning", "slow_actions"]


def slow_actions(manifest) -> list[str]:
    """Where the skill calls out: ``intents.<name>.http`` / ``.handler``, ``media.handler``,
    ``events.<type>.handler``."""
    found = []
    for name, resp in (manifest.intents or {}).items():
        for kind in ("http", "handler"):
            if isinstance(resp, dict) and resp.get(kind):
                found.append(f"intents.{name}.{kind}")
    raw = manifest.raw or {}
    if (raw.get("media") or {}).get("handler"):
        found.append("media.handler")
    for event, spec in (raw.get("events") or {}).items():
        if isinstance(spec, dict) and spec.get("handler"):
            found.append(f"events.{event}.handler")
    return found


def late_reply_warning(manifest) -> str | None:
    """What to tell the operator when a skill with slow actions lacks the permission its late
    replies need; None when it holds it or answers only from templates."""
    if PERMISSION in (manifest.permissions or []):
        return None
    slow = slow_actions(manifest)
    if not slow:
        return None
    shown = ", ".join(slow[:4]) + (f" and {len(slow) - 4} more" if len(slow) > 4 else "")
    return (
        f"{manifest.id} {manifest.version}: {shown} may answer after the session webhook is "
        f"gone, and without the '{PERMISSION}' permission such a reply reaches nobody; add "
        f"'{PERMISSION}' to 'permissions' in its skill.yaml and re-install"
    )
