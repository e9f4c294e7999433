"""The bundled runtime: serve installed skills on DingTalk Stream mode (or webhook mode)."""

from .config import ConfigError, RuntimeConfig, load_config
from .local import LocalPipeline, respond
from .pipeline import Pipeline
from .stores import MemoryStore, RedisStore, SqliteStore

__all__ = [
    "ConfigError",
    "LocalPipeline",
    "MemoryStore",
    "Pipeline",
    "RedisStore",
    "RuntimeConfig",
    "SqliteStore",
    "load_config",
    "respond",
]


def __getattr__(name):
    if name == "Runtime":
        from .app import Runtime

        return Runtime
    raise AttributeError(name)
