"""Security primitives shared by the runtime and the operator CLI.

* :mod:`.crypto` — AES-256-GCM encryption at rest with key ids and rotation;
* :mod:`.audit_chain` — a tamper-evident (hash-chained) audit log with retention;
* :mod:`.rbac` — roles, the permission matrix, API tokens, staff ids and temporary grants;
* :mod:`.redact` — keeps secrets out of logs, metrics, audit records and error messages.

This layer imports nothing from the rest of dingskill.
"""

from .audit_chain import AuditChain, ChainProblem, verify_chain
from .crypto import CryptoError, Keyring
from .rbac import PERMISSIONS, ROLES, AccessControl, AccessDecision
from .redact import Redactor

__all__ = [
    "PERMISSIONS",
    "ROLES",
    "AccessControl",
    "AccessDecision",
    "AuditChain",
    "ChainProblem",
    "CryptoError",
    "Keyring",
    "Redactor",
    "verify_chain",
]
