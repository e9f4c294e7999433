"""The bundled runtime: serve installed skills on DingTalk Stream mode (or webhook mode).

Names are imported on first use: ``dingskill.runtime.config`` (the CLI, ``dingskill doctor``)
must not load the skills, the classifier and scikit-learn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "ConfigError",
    "LocalPipeline",
    "MemoryStore",
    "Pipeline",
    "RedisStore",
    "Runtime",
    "RuntimeConfig",
    "SqliteStore",
    "load_config",
    "respond",
]

_LAZY = {
    "ConfigError": ".config",
    "RuntimeConfig": ".config",
    "load_config": ".config",
    "LocalPipeline": ".local",
    "respond": ".local",
    "Pipeline": ".pipeline",
    "MemoryStore": ".stores",
    "RedisStore": ".stores",
    "SqliteStore": ".stores",
    "Runtime": ".app",
}

if TYPE_CHECKING:  # pragma: no cover
    from .app import Runtime
    from .config import ConfigError, RuntimeConfig, load_config
    from .local import LocalPipeline, respond
    from .pipeline import Pipeline
    from .stores import MemoryStore, RedisStore, SqliteStore


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'dingskill.runtime' has no attribute {name!r}")
