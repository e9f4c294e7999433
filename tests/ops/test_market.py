"""Skill starters and the skill market, end to end: ``dingskill new`` (zh and en) -> train ->
chat -> export (signed) -> ``market build`` -> served over HTTP on 127.0.0.1 -> ``plugins
search|install NAME[==VERSION]|upgrade``; a tampered index or package is refused with the
installed set unchanged."""

from __future__ import annotations

import io
import json
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dingskill.cli.main import main
from dingskill.skills import Skill
from dingskill.skills.market import MarketClient, MarketError
from dingskill.skills.packaging import SkillHome, generate_keys
from dingskill.skills.starters import new_skill


def _chat(path: Path, lines: list[str], monkeypatch, capsys) -> list[dict]:
    """``dingskill chat PATH --json`` (in process: the CLI entry point, stdin fed lines)."""
    monkeypatch.setenv("DINGSKILL_HOME", str(path.parent / ".home"))
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(lines) + "\n"))
    capsys.readouterr()
    assert main(["chat", str(path), "--json"]) == 0
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def market(tmp_path_factory):
    """Two starters, each exported at 0.1.0 and 0.2.0 (signed), indexed and served over HTTP."""
    work = tmp_path_factory.mktemp("market")
    key, pub, kid = generate_keys(work / "keys", "market")
    dist = work / "dist"
    faq = new_skill("office-faq", "faq", "zh", work / "src")
    form = new_skill("visitor-desk", "form", "en", work / "src")
    for path in (faq, form):
        Skill.load(path).export(dist, key=key)
        text = (path / "skill.yaml").read_text(encoding="utf-8")
        (path / "skill.yaml").write_text(text.replace("version: 0.1.0", "version: 0.2.0"))
        (path / "CHANGELOG.md").write_text(
            (path / "CHANGELOG.md").read_text() + "\n## 0.2.0\n- second release\n"
        )
        Skill.load(path).export(dist, key=key)
    assert main(["market", "build", str(dist), "--key", str(key), "--name", "test"]) == 0
    handler = partial(SimpleHTTPRequestHandler, directory=str(dist))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {
        "dist": dist,
        "pub": pub,
        "kid": kid,
        "key": key,
        "faq": faq,
        "form": form,
        "url": f"http://127.0.0.1:{server.server_address[1]}",
    }
    server.shutdown()
    server.server_close()


def test_starters_train_chat_and_export_in_both_languages(market, monkeypatch, capsys):
    zh = _chat(market["faq"], ["几点上班", "怎么报销"], monkeypatch, capsys)
    assert [r["intent"] for r in zh] == ["office_hours", "expense_process"]
    assert "9:00" in zh[0]["text"]
    en = _chat(
        market["form"], ["register visitor", "tomorrow", "3", "Alice Chen"], monkeypatch, capsys
    )
    assert en[0]["intent"] == "register_visitor" and "Which day" in en[0]["text"]
    assert "3 guest(s)" in en[-1]["text"] and "Alice Chen" in en[-1]["text"]
    new_skill("lookup", "api-lookup", "zh", market["dist"].parent / "src")
    assert Skill.load(market["dist"].parent / "src" / "lookup").train() is not None
    assert main(["new", "office-faq", "-C", str(market["dist"].parent / "src")]) == 1


def test_index_lists_versions_languages_permissions_changelog_digests(market):
    index = json.loads((market["dist"] / "index.json").read_text())
    faq = index["skills"]["com.example.office-faq"]
    assert list(faq["versions"]) == ["0.1.0", "0.2.0"] and faq["latest"] == "0.2.0"
    v2 = faq["versions"]["0.2.0"]
    assert v2["languages"] == ["zh"] and "qyapi_robot_sendmsg" in v2["permissions"]
    assert "second release" in v2["changelog"] and len(v2["sha256"]) == 64
    assert v2["package_key_id"] == market["kid"]


def test_search_install_pin_and_upgrade_from_an_http_market(market, tmp_path, capsys):
    home = str(tmp_path / "home")
    url = market["url"]
    assert main(["market", "--home", home, "add", "team", url]) == 0
    assert main(["plugins", "--home", home, "search", "faq"]) == 1
    assert "non-public address" in capsys.readouterr().out  # 127.0.0.1 needs the operator's allow
    assert main(["market", "--home", home, "add", "team", url, "--allow-private-network"]) == 0
    assert main(["plugins", "--home", home, "search", "visitor"]) == 1
    assert "no trusted keys" in capsys.readouterr().out
    assert main(["keys", "trust", str(market["pub"]), "--home", home]) == 0
    capsys.readouterr()
    assert main(["plugins", "--home", home, "search", "visitor", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []  # a key without namespaces lists nothing
    trust = ["keys", "trust", str(market["pub"]), "--home", home, "--namespace", "com.example.*"]
    assert main(trust) == 0
    capsys.readouterr()
    assert main(["plugins", "--home", home, "search", "visitor", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["version"]) for r in rows] == [("com.example.visitor-desk", "0.2.0")]
    assert main(["plugins", "--home", home, "install", "visitor-desk==0.1.0"]) == 0
    assert main(["plugins", "--home", home, "install", "com.example.office-faq==0.1.0"]) == 0
    installed = {s.id: s.version for s in SkillHome(home).installed()}
    assert installed == {"com.example.visitor-desk": "0.1.0", "com.example.office-faq": "0.1.0"}
    assert all(s.signature.startswith("trusted:") for s in SkillHome(home).installed())
    capsys.readouterr()
    assert main(["plugins", "--home", home, "upgrade"]) == 0
    out = capsys.readouterr().out
    assert "com.example.office-faq: 0.1.0 -> 0.2.0" in out
    assert {s.version for s in SkillHome(home).installed()} == {"0.2.0"}
    assert main(["plugins", "--home", home, "upgrade"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["plugins", "--home", home, "install", "visitor-desk==9.9.9"]) == 1
    assert "available: 0.1.0, 0.2.0" in capsys.readouterr().out


def _copy_market(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_tampered_index_or_package_is_refused_and_nothing_changes(market, tmp_path):
    home = SkillHome(tmp_path / "home")
    home.trust_key(market["pub"].read_text(), ["com.example.*"])
    bad = _copy_market(market["dist"], tmp_path / "m")
    client = MarketClient(home)
    client.add("local", bad.as_uri())
    client.install("office-faq==0.1.0")
    gen, before = home.generation(), [s.to_dict() for s in home.installed()]

    # a package swapped for another one (the index still names the original digest)
    pkg = bad / "com.example.office-faq-0.2.0.skill"
    original = pkg.read_bytes()
    pkg.write_bytes((bad / "com.example.office-faq-0.1.0.skill").read_bytes())
    with pytest.raises(MarketError, match="does not match the signed index"):
        client.install("office-faq")
    with pytest.raises(MarketError, match="does not match the signed index"):
        client.upgrade()
    pkg.write_bytes(original)

    # the index edited to point at the swapped digest: its signature no longer verifies
    index = bad / "index.json"
    text = index.read_text()
    index.write_text(text.replace('"0.2.0"', '"0.2.1"', 1))
    with pytest.raises(MarketError, match="does not verify"):
        client.search("")
    with pytest.raises(MarketError, match="does not verify"):
        client.install("office-faq")
    # an index signed by a key the operator does not trust
    index.write_text(text)
    other, _, _ = generate_keys(tmp_path / "k2", "other")
    from dingskill.skills.market import build_index

    build_index(bad, other)
    with pytest.raises(MarketError, match="is not trusted"):
        client.install("office-faq")
    assert home.generation() == gen and [s.to_dict() for s in home.installed()] == before


def _resign(folder: Path, key: Path, mutate) -> None:
    """Edit ``index.json`` with ``mutate(index)`` and sign it again with ``key`` (what a
    market's own key can do: the client must still refuse what is wrong in it)."""
    from dingskill.skills.packaging.signing import load_signer, sign_bytes

    index = json.loads((folder / "index.json").read_text())
    mutate(index)
    body = (json.dumps(index, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
    (folder / "index.json").write_bytes(body)
    (folder / "index.json.sig").write_text(json.dumps(sign_bytes(body, load_signer(key))))


def test_a_key_publishes_only_its_namespaces_and_never_shadows_another_market(market, tmp_path):
    from dingskill.skills.market import build_index

    home = SkillHome(tmp_path / "home")
    home.trust_key(market["pub"].read_text(), ["com.example.*"])
    client = MarketClient(home)
    client.add("team", _copy_market(market["dist"], tmp_path / "team").as_uri())
    client.install("office-faq==0.1.0")
    # a second market, signed by another trusted key, lists the same skills
    other_key, other_pub, other_kid = generate_keys(tmp_path / "k2", "other")
    rogue = _copy_market(market["dist"], tmp_path / "rogue")
    build_index(rogue, other_key)
    home.trust_key(other_pub.read_text(), ["com.other.*"])
    client.add("rogue", rogue.as_uri())
    client = MarketClient(home)
    assert {r.market for r in client.search("")} == {"team"}  # outside its namespace: unlisted
    assert any("outside the namespaces" in n and other_kid in n for n in client.refused)
    # even when the operator binds it to the same namespace, it cannot take over the skill
    # installed from "team", and a skill both list is ambiguous until one market is removed
    home.trust_key(other_pub.read_text(), ["com.example.*"])
    client = MarketClient(home)
    assert client.resolve("office-faq").market == "team"
    assert [u[2].market for u in client.upgrades()] == ["team"]
    with pytest.raises(MarketError, match="listed by several markets"):
        client.install("visitor-desk")
    client.remove("team")
    with pytest.raises(MarketError, match="installed from market team"):
        client.upgrade()
    assert {s.id: s.version for s in home.installed()} == {"com.example.office-faq": "0.1.0"}


def test_a_package_must_be_the_index_entry_chosen(market, tmp_path):
    home = SkillHome(tmp_path / "home")
    home.trust_key(market["pub"].read_text(), ["com.example.*"])
    folder = _copy_market(market["dist"], tmp_path / "m")
    client = MarketClient(home)
    client.add("team", folder.as_uri())
    skills = json.loads((folder / "index.json").read_text())["skills"]
    visitor = skills["com.example.visitor-desk"]["versions"]["0.2.0"]

    def swap(index):  # office-faq 0.2.0 names the visitor-desk package (digest and all)
        entry = index["skills"]["com.example.office-faq"]["versions"]["0.2.0"]
        entry.update({k: visitor[k] for k in ("file", "sha256", "size")})

    _resign(folder, market["key"], swap)
    with pytest.raises(MarketError, match="manifest id com.example.visitor-desk differs"):
        client.install("office-faq==0.2.0")

    def fewer_permissions(index):
        entry = index["skills"]["com.example.visitor-desk"]["versions"]["0.1.0"]
        entry["permissions"] = []

    _resign(folder, market["key"], fewer_permissions)
    with pytest.raises(MarketError, match="manifest permissions .* differs"):
        client.install("visitor-desk==0.1.0")
    assert home.installed() == []


def test_older_or_expired_indexes_are_refused_unless_allowed(market, tmp_path):
    from dingskill.skills.market import build_index

    home = SkillHome(tmp_path / "home")
    home.trust_key(market["pub"].read_text(), ["com.example.*"])
    folder = _copy_market(market["dist"], tmp_path / "m")
    client = MarketClient(home)
    client.add("team", folder.as_uri())
    old = {n: (folder / n).read_bytes() for n in ("index.json", "index.json.sig")}
    first = json.loads(old["index.json"])["version"]
    assert client.search("")
    build_index(folder, market["key"])  # a newer index: seen and remembered
    assert json.loads((folder / "index.json").read_text())["version"] > first
    assert client.search("")
    for name, data in old.items():  # an attacker serves the older, validly signed index
        (folder / name).write_bytes(data)
    with pytest.raises(MarketError, match="older than version"):
        client.search("")
    with pytest.raises(MarketError, match="older than version"):
        client.install("office-faq")
    assert MarketClient(home, allow_downgrade=True).search("")
    build_index(folder, market["key"])

    def expired(index):
        index["version"] += 1
        index["expires"] = "2020-01-01T00:00:00Z"

    _resign(folder, market["key"], expired)
    with pytest.raises(MarketError, match="expired at 2020-01-01"):
        client.search("")
    assert home.installed() == []


def test_an_upgrade_that_adds_permissions_needs_approval(market, tmp_path, capsys):
    home = tmp_path / "home"
    folder = _copy_market(market["dist"], tmp_path / "m")
    # 0.3.0 of the FAQ also asks for interactive cards
    src = tmp_path / "src" / "office-faq"
    import shutil

    shutil.copytree(market["faq"], src)
    text = (src / "skill.yaml").read_text(encoding="utf-8").replace("0.2.0", "0.3.0")
    (src / "skill.yaml").write_text(
        text.replace("permissions: [", "permissions: [Card.Instance.Write, ", 1)
    )
    assert "Card.Instance.Write" in (src / "skill.yaml").read_text(encoding="utf-8")
    Skill.load(src).export(folder, key=market["key"])
    assert main(["market", "build", str(folder), "--key", str(market["key"])]) == 0
    args = ["plugins", "--home", str(home)]
    assert main(["market", "--home", str(home), "add", "team", folder.as_uri()]) == 0
    trust = ["keys", "trust", str(market["pub"]), "--home", str(home)]
    assert main([*trust, "--namespace", "com.example.*"]) == 0
    assert main([*args, "install", "office-faq==0.2.0"]) == 0
    capsys.readouterr()
    assert main([*args, "upgrade"]) == 1
    out = capsys.readouterr().out
    assert "asks for more than 0.2.0 had: permissions Card.Instance.Write" in out, out
    assert SkillHome(home).installed()[0].version == "0.2.0"
    assert main([*args, "upgrade", "--approve"]) == 0
    assert SkillHome(home).installed()[0].version == "0.3.0"


def test_search_prints_no_terminal_control_sequences_from_an_index(market, tmp_path, capsys):
    folder = _copy_market(market["dist"], tmp_path / "m")

    def hostile(index):
        skill = index["skills"]["com.example.office-faq"]
        skill["name"] = "faq\x1b[2J\x1b[H"  # clear the screen
        skill["description"] = "hi\x1b]52;c;cHduZWQ=\x07 \x1b]8;;https://evil.example\x1b\\x\x9b1A"

    _resign(folder, market["key"], hostile)
    home = str(tmp_path / "home")
    assert main(["market", "--home", home, "add", "team", folder.as_uri()]) == 0
    assert main(["keys", "trust", str(market["pub"]), "--home", home, "--namespace", "com.*"]) == 0
    capsys.readouterr()
    assert main(["plugins", "--home", home, "search", "faq"]) == 0
    out = capsys.readouterr().out
    assert "com.example.office-faq" in out and "faq" in out
    assert "\x1b" not in out and "\x9b" not in out and "\x07" not in out


def test_a_key_bound_to_namespaces_signs_no_package_outside_them(market, tmp_path):
    from dingskill.skills.packaging import PackageError

    home = SkillHome(tmp_path / "home")
    home.trust_key(market["pub"].read_text(), ["com.corp.*"])
    with pytest.raises(PackageError, match="may publish only com.corp"):
        home.install(market["dist"] / "com.example.office-faq-0.1.0.skill")
    assert home.installed() == []
    home.trust_key(market["pub"].read_text(), ["com.example.office-faq"])
    assert home.install(market["dist"] / "com.example.office-faq-0.1.0.skill").version == "0.1.0"
