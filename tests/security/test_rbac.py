"""Roles, tokens, staff ids, temporary grants and their audit trail."""

from __future__ import annotations

import pytest
from dingskill.security.rbac import PERMISSIONS, ROLES, AccessControl, AccessError


class Clock:
    def __init__(self, t: int = 1_800_000_000_000) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


@pytest.fixture
def acl(tmp_path):
    audit: list[dict] = []
    clock = Clock()
    ac = AccessControl(tmp_path / "access.json", audit=audit.append, clock=clock)
    ac.audit_log = audit  # type: ignore[attr-defined]
    ac.test_clock = clock  # type: ignore[attr-defined]
    return ac


@pytest.mark.parametrize("role", sorted(ROLES))
@pytest.mark.parametrize("permission", sorted(PERMISSIONS))
def test_permission_matrix_allowed_and_refused(acl, role, permission):
    acl.set_staff_role("u1", role)
    decision = acl.authorize("staff:u1", permission)
    assert decision.allowed is (permission in ROLES[role])
    denied = [r for r in acl.audit_log if r["result"] == "denied"]
    assert bool(denied) is (not decision.allowed)


def test_least_privilege_for_unknown_and_anonymous(acl):
    for subject in ("staff:nobody", None):
        for permission in PERMISSIONS:
            assert not acl.authorize(subject, permission).allowed
    assert {r["actor"] for r in acl.audit_log} == {"staff:nobody", "anonymous"}


def test_token_is_stored_hashed_and_authenticates(acl):
    token = acl.create_token("ci bot", "operator")
    raw = acl.path.read_text()
    assert token not in raw and token.split("_", 2)[2] not in raw
    subject = acl.authenticate(token)
    assert subject and subject.startswith("token:")
    assert acl.authorize(subject, "skills.install").allowed
    assert not acl.authorize(subject, "audit.read").allowed
    assert acl.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert acl.authenticate("not-a-token") is None


def test_temporary_grant_is_used_then_expires_mid_test(acl):
    acl.set_staff_role("alice", "viewer")
    assert not acl.authorize("staff:alice", "skills.rollback").allowed
    grant = acl.grant(
        "staff:alice", "operator", duration_s=60, actor="staff:boss", reason="发布窗口"
    )
    d = acl.authorize("staff:alice", "skills.rollback")
    assert d.allowed and d.via_grant == grant["id"]
    acl.test_clock.t += 61_000
    assert not acl.authorize("staff:alice", "skills.rollback").allowed
    ops = [r["operation"] for r in acl.audit_log]
    assert (
        ops.index("access.grant")
        < ops.index("access.grant.used")
        < ops.index("access.grant.expired")
    )
    assert acl.authorize("staff:alice", "metrics.read").allowed  # permanent role remains


def test_revoke_and_report(acl):
    acl.set_staff_role("bob", "admin")
    g = acl.grant("staff:carol", "operator", duration_s=3600)
    rows = acl.report()
    assert {(r["subject"], r["role"]) for r in rows} == {
        ("staff:bob", "admin"),
        ("staff:carol", "operator"),
    }
    assert acl.revoke(g["id"]) == 1
    assert not acl.authorize("staff:carol", "skills.install").allowed
    assert acl.revoke("staff:bob") == 1
    assert acl.report() == []


def test_bad_input_is_named(acl, tmp_path):
    with pytest.raises(AccessError, match="unknown role 'root'"):
        acl.set_staff_role("x", "root")
    with pytest.raises(AccessError, match="expected 'token:<id>' or 'staff:<staffId>'"):
        acl.grant("x", "viewer", 60)
    with pytest.raises(AccessError, match="90 days"):
        acl.grant("staff:x", "viewer", 100 * 86400)
    with pytest.raises(AccessError, match="access.roles.ops: unknown permission"):
        AccessControl(tmp_path / "a.json", roles={"ops": ["skills.install", "fly"]})
    with pytest.raises(AccessError, match="unknown permission 'fly'"):
        acl.authorize("staff:x", "fly")
