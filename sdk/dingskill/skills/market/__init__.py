"""The skill market: a static, signed index of skill packages (``market build``) that any
static host or object storage serves, and the client that searches it and installs from it
with every signature and digest checked (``plugins search|install NAME|upgrade``)."""

from .client import MarketClient, MarketSource, Resolved
from .index import INDEX, INDEX_SIG, MarketError, build_index, parse_version, verify_index

__all__ = [
    "INDEX",
    "INDEX_SIG",
    "MarketClient",
    "MarketError",
    "MarketSource",
    "Resolved",
    "build_index",
    "parse_version",
    "verify_index",
]
