"""Faults the emulator can inject (webhook errors and hangs); connection drops and SYSTEM
frames are in the gateway (``drop_connections``, ``system``)."""

from __future__ import annotations

__all__ = ["DEFAULT_FAULTS", "set_faults"]

DEFAULT_FAULTS = {
    "webhook_500": 0,  # the next N session-webhook calls answer HTTP 500
    "webhook_hang": 0,  # the next N session-webhook calls hang for hang_seconds first
    "hang_seconds": 30.0,
}


def set_faults(faults: dict, **changes) -> dict:
    """Apply ``changes`` to ``faults``; a clear error names an unknown fault."""
    for k, v in changes.items():
        if k not in DEFAULT_FAULTS:
            raise ValueError(f"unknown fault {k!r}; one of {sorted(DEFAULT_FAULTS)}")
        if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise ValueError(f"fault {k!r} takes a number >= 0, not {v!r}")
        faults[k] = v
    return faults
