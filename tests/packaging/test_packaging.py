"""Export, signatures, every refusal (with the home left untouched), install / upgrade /
rollback / remove / verify, concurrent installs, download from a real HTTP server, and the CLI."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest
from dingskill.cli.main import main
from dingskill.skills import Skill
from dingskill.skills.packaging import (
    Limits,
    PackageError,
    PolicyError,
    RecordMismatchError,
    SignatureError,
    SkillHome,
    UnsafeArchiveError,
    generate_keys,
)
from dingskill.skills.packaging.archive import write_archive

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """hr-assistant 1.0.0 and a 1.1.0 copy, faq-en, it-helpdesk (with handlers), exported."""
    work = tmp_path_factory.mktemp("pkgs")
    src = work / "src"
    shutil.copytree(ROOT / "skills", src / "skills")
    (src / "datasets").symlink_to(ROOT / "datasets")
    v11 = src / "skills" / "hr-assistant-1.1"
    shutil.copytree(src / "skills" / "hr-assistant", v11)
    text = (
        (v11 / "skill.yaml").read_text(encoding="utf-8").replace("version: 1.0.0", "version: 1.1.0")
    )
    (v11 / "skill.yaml").write_text(
        text.replace("审批结果会通知您。", "审批结果会通过钉钉通知您。"), encoding="utf-8"
    )
    dist = work / "dist"
    out = {
        name: Skill.load(src / "skills" / name).export(dist)
        for name in ("hr-assistant", "hr-assistant-1.1", "faq-en", "it-helpdesk")
    }
    key, pub, kid = generate_keys(work / "keys", "team")
    out["signed"] = Skill.load(src / "skills" / "it-helpdesk").export(work / "signed", key=key)
    out["pub"], out["kid"], out["key"], out["src"] = pub, kid, key, src
    return out


def _tree(home: Path) -> dict:
    if not home.exists():
        return {}
    return {
        str(p.relative_to(home)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(home.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


def _members(pkg: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(pkg) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _zip(members: dict[str, bytes], links: tuple = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if name in links:
                info.external_attr = (0o120777) << 16
            zf.writestr(info, data)
    return buf.getvalue()


def test_export_is_byte_identical_and_records_every_member(built, tmp_path):
    again = Skill.load(built["src"] / "skills" / "hr-assistant").export(tmp_path)
    assert again.read_bytes() == built["hr-assistant"].read_bytes()
    m = _members(built["hr-assistant"])
    record = m["RECORD"].decode().splitlines()
    assert record[-1] == "RECORD,,"
    listed = {line.split(",")[0] for line in record[:-1]}
    assert listed == set(m) - {"RECORD"}
    with zipfile.ZipFile(built["hr-assistant"]) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


@pytest.fixture
def home(tmp_path, built):
    h = SkillHome(tmp_path / "home")
    h.install(built["faq-en"])  # something already installed, that a refusal must not touch
    return h


def _refused(home: SkillHome, data: bytes, tmp_path, exc_type, match: str, **kw):
    before = _tree(home.home)
    pkg = tmp_path / "crafted.skill"
    pkg.write_bytes(data)
    with pytest.raises(exc_type, match=match):
        home.install(pkg, **kw)
    assert _tree(home.home) == before


def _resign(members: dict[str, bytes]) -> dict[str, bytes]:
    """Rebuild RECORD over the given members (a consistent but crafted package)."""
    files = {k: v for k, v in members.items() if k not in ("RECORD", "SIGNATURE")}
    with zipfile.ZipFile(io.BytesIO(write_archive(files))) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_refusals_leave_the_home_untouched(home, built, tmp_path):
    m = _members(built["hr-assistant"])
    altered = dict(m, **{"skill.yaml": m["skill.yaml"] + "# 已改动 altered\n".encode()})
    _refused(
        home, _zip(altered), tmp_path, RecordMismatchError, "'skill.yaml' does not match its RECORD"
    )
    _refused(
        home,
        _zip(dict(m, **{"extra.py": b"print(1)"})),
        tmp_path,
        RecordMismatchError,
        "'extra.py' is not in RECORD",
    )
    missing = {k: v for k, v in m.items() if k != "CHANGELOG.md"}
    _refused(
        home,
        _zip(missing),
        tmp_path,
        RecordMismatchError,
        "'CHANGELOG.md' is listed in RECORD but missing",
    )
    _refused(home, _zip({"../evil.py": b"x", **m}), tmp_path, UnsafeArchiveError, "path escapes")
    _refused(
        home, _zip({"/etc/cron.d/x": b"x", **m}), tmp_path, UnsafeArchiveError, "absolute path"
    )
    _refused(
        home,
        _zip({"link": b"/etc/passwd", **m}, links=("link",)),
        tmp_path,
        UnsafeArchiveError,
        "symbolic links",
    )
    bad_manifest = _resign(
        dict(m, **{"skill.yaml": m["skill.yaml"].replace(b"version: 1.0.0", b"version: 1.0")})
    )
    _refused(
        home, _zip(bad_manifest), tmp_path, PackageError, "version: 1.0 is not of type 'string'"
    )
    too_new = _resign(
        dict(
            m,
            **{
                "skill.yaml": m["skill.yaml"].replace(
                    b"min_dingskill: 0.1.0", b"min_dingskill: 9.0.0"
                )
            },
        )
    )
    _refused(home, _zip(too_new), tmp_path, PackageError, "min_dingskill: needs dingskill 9.0.0")
    import pickle

    pickled = _resign(dict(m, **{"model.dsm": pickle.dumps({"evil": True})}))
    _refused(home, _zip(pickled), tmp_path, PackageError, "model.dsm: not the safe model format")
    _refused(home, b"not a zip at all", tmp_path, PackageError, "not a skill package")
    _refused(
        home,
        built["hr-assistant"].read_bytes(),
        tmp_path,
        PackageError,
        "does not match the package's version",
        version="2.0.0",
    )


def test_zip_bomb_and_size_limits(tmp_path, built):
    home = SkillHome(
        tmp_path / "home",
        limits=Limits(max_member_bytes=4 * 2**20, max_ratio=50, ratio_floor_bytes=2**20),
    )
    m = _members(built["hr-assistant"])
    _refused(
        home,
        _zip({"bomb.txt": b"\0" * (3 * 2**20), **m}),
        tmp_path,
        UnsafeArchiveError,
        "compression ratio above 50",
    )
    _refused(
        home,
        _zip({"big.bin": os.urandom(5 * 2**20), **m}),
        tmp_path,
        UnsafeArchiveError,
        "larger than 4194304 bytes",
    )


def test_handlers_and_signature_policy(home, built, tmp_path):
    _refused(home, built["it-helpdesk"].read_bytes(), tmp_path, PolicyError, "Python handlers")
    _refused(
        home, built["it-helpdesk"].read_bytes(), tmp_path, PolicyError, "not approved", trust=True
    )
    info = home.install(
        built["it-helpdesk"], trust=True, allow_hosts=["127.0.0.1", "helpdesk.example.com"]
    )
    assert info.trusted and info.approved_hosts == ["127.0.0.1", "helpdesk.example.com"]
    home.remove("com.dingskill.it-helpdesk")
    _refused(
        home, built["signed"].read_bytes(), tmp_path, PolicyError, "Python handlers"
    )  # signed, key not trusted
    kid = home.trust_key(built["pub"].read_text())
    assert kid == built["kid"]
    info = home.install(built["signed"], allow_hosts=["127.0.0.1", "helpdesk.example.com"])
    assert info.signature == f"trusted:{kid}" and info.trusted
    home.set_config(require_signature=True)
    _refused(
        home,
        built["hr-assistant"].read_bytes(),
        tmp_path,
        PolicyError,
        "requires signed packages; this one is unsigned",
    )
    m = _members(built["signed"])
    forged = dict(
        m, **{"SIGNATURE": m["SIGNATURE"].replace(b'"signature": "', b'"signature": "AAAA')}
    )
    _refused(home, _zip(forged), tmp_path, SignatureError, "SIGNATURE")


def test_install_upgrade_rollback_remove_verify(tmp_path, built):
    h = SkillHome(tmp_path / "home")
    g0 = h.generation()
    h.install(built["hr-assistant"])
    info = h.install(built["hr-assistant-1.1"])
    assert (info.version, info.previous) == ("1.1.0", ["1.0.0"]) and h.generation() == g0 + 2
    s = Skill.load(h.active_paths()[0])
    assert s.manifest.version == "1.1.0" and s.is_package
    assert h.rollback("com.dingskill.hr-assistant").version == "1.0.0"
    with pytest.raises(PackageError, match="no version before 1.0.0"):
        h.rollback("com.dingskill.hr-assistant")
    assert h.install(built["hr-assistant"]).version == "1.0.0"  # same bytes again: fine
    assert h.verify() == []
    f = h.active_paths()[0] / "skill.yaml"
    f.write_text(f.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert any("skill.yaml was altered" in p for p in h.verify())
    h.remove("com.dingskill.hr-assistant")
    assert h.installed() == []
    with pytest.raises(PackageError, match="not installed"):
        h.remove("com.dingskill.hr-assistant")


def test_concurrent_installs_from_two_processes_serialise(tmp_path, built):
    code = (
        "import sys; from dingskill.skills.packaging import SkillHome; "
        "SkillHome(sys.argv[1]).install(sys.argv[2])"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "home"), str(built[name])])
        for name in ("hr-assistant", "hr-assistant-1.1", "faq-en")
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    h = SkillHome(tmp_path / "home")
    assert h.generation() == 3 and h.verify() == []
    hr = next(s for s in h.installed() if s.id == "com.dingskill.hr-assistant")
    assert sorted([hr.version, *hr.previous]) == ["1.0.0", "1.1.0"]
    assert not [
        p
        for p in (tmp_path / "home" / "skills" / "com.dingskill.hr-assistant").iterdir()
        if p.name.startswith(".install")
    ]


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    root.mkdir()

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(root), **kw)

        def log_message(self, *a):
            return

    srv = HTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_install_from_url_with_size_limit(tmp_path, built, http_dir):
    root, url = http_dir
    shutil.copy(built["faq-en"], root / "faq.skill")
    h = SkillHome(tmp_path / "home")
    assert h.install(f"{url}/faq.skill").id == "com.dingskill.faq-en"
    small = SkillHome(tmp_path / "home2", limits=Limits(max_package_bytes=1000))
    with pytest.raises(PackageError, match="limit 1000"):
        small.install(f"{url}/faq.skill")
    with pytest.raises(PackageError, match="HTTP 404"):
        h.install(f"{url}/missing.skill")


def test_cli_end_to_end(tmp_path, built, capsys):
    home = str(tmp_path / "home")
    dist = tmp_path / "dist"
    assert main(["export", str(built["src"] / "skills" / "faq-en"), "-o", str(dist)]) == 0
    pkg = dist / "com.dingskill.faq-en-1.0.0.skill"
    assert (
        main(["plugins", "--home", home, "install", "--source", str(pkg), "--version", "1.0.0"])
        == 0
    )
    assert main(["plugins", "--home", home, "install", "--source", str(built["it-helpdesk"])]) == 1
    assert "Python handlers" in capsys.readouterr().out
    assert main(["plugins", "--home", home, "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["version"]) for r in rows] == [("com.dingskill.faq-en", "1.0.0")]
    assert main(["plugins", "--home", home, "verify"]) == 0
    assert main(["plugins", "--home", home, "rollback", "com.dingskill.faq-en"]) == 1
    assert main(["keys", "generate", "-o", str(tmp_path / "k"), "--name", "ops"]) == 0
    assert (
        main(["keys", "trust", str(tmp_path / "k" / "ops.pub"), "--home", home, "--require"]) == 0
    )
    assert (
        main(
            [
                "export",
                str(built["src"] / "skills" / "faq-en"),
                "-o",
                str(tmp_path / "d2"),
                "--sign",
                str(tmp_path / "k" / "ops.key"),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["plugins", "--home", home, "remove", "com.dingskill.faq-en"]) == 0
    assert (
        main(["plugins", "--home", home, "install", "--source", str(pkg)]) == 1
    )  # unsigned, now required
    assert (
        main(["plugins", "--home", home, "install", "--source", str(tmp_path / "d2" / pkg.name)])
        == 0
    )
