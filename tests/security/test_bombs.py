"""Resource bombs from packages: templates (time, memory, output), regular expressions,
YAML (aliases, nesting), huge manifests, nested model inflation, malformed members and
signatures. Each is refused with a message naming what and why, quickly."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest
from dingskill.nlu import IntentClassifier
from dingskill.nlu.persistence import _META, UnsafeModelError
from dingskill.nlu.rules import RuleError, RuleSet
from dingskill.skills import ManifestError, TemplateError
from dingskill.skills.manifest import parse_manifest
from dingskill.skills.packaging import SkillHome, UnsafeArchiveError
from dingskill.skills.packaging.archive import write_archive
from dingskill.skills.packaging.errors import SignatureError
from dingskill.skills.packaging.signing import verify_signature
from dingskill.skills.slots import extract_slot
from dingskill.skills.templates import arender, render

from .hostile import tree

BASE = """id: com.example.bomb
name: bomb
version: 1.0.0
languages: [en]
dataset: {train: data.csv}
intents: {hello: {template: hi}}
"""


def _elapsed(fn, *args):
    t0 = time.monotonic()
    with pytest.raises((TemplateError, ManifestError, RuleError, UnsafeModelError)) as info:
        fn(*args)
    return time.monotonic() - t0, str(info.value)


@pytest.mark.parametrize(
    "source,why",
    [
        ("{{ 9**(9**9) }}", "power with about"),
        ("{{ 'a' * 10**9 }}", "repetition to 1000000000 items refused"),
        ("{{ [1] * 10**8 }}", "repetition"),
        (
            "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
            "longer than",
        ),
        (
            "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}"
            "{% endif %}{% endmacro %}{{ d('aaaaaaaa', 40) }}",
            "memory|longer than",
        ),
        ("{% for a in message.text %}{{ message.text }}{% endfor %}", "longer than 20000"),
    ],
)
def test_template_bombs_are_stopped(source, why):
    took, msg = _elapsed(render, source, {"message": {"text": "x" * 4000}})
    assert took < 10 and __import__("re").search(why, msg), msg
    assert render("{{ 2 ** 10 }} {{ 'ab' * 3 }}", {}) == "1024 ababab"  # workers recover


def test_template_bombs_from_the_event_loop_keep_it_running():
    """arender talks to the workers from the loop: a bomb is stopped the same way, the loop
    keeps ticking meanwhile, and more renders than workers at once all finish."""
    import asyncio

    async def main():
        ticks = 0

        async def tick():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        slow = (
            "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}"
        )
        with pytest.raises(TemplateError, match="longer than"):
            await arender(slow, {})
        assert ticks >= 20  # the 2 s limit passed with the loop running
        outs = await asyncio.gather(*(arender("{{ n * 2 }}", {"n": n}) for n in range(12)))
        assert outs == [str(n * 2) for n in range(12)]
        with pytest.raises(TemplateError, match="repetition"):
            await arender("{{ 'a' * 10**9 }}", {})
        big = {"message": {"text": "好" * 40_000}}  # a request larger than a pipe holds
        assert await arender("{{ message.text|length }}", big) == "40000"
        ticker.cancel()

    asyncio.run(main())


def test_regexes_run_in_linear_time_or_are_refused():
    rules = RuleSet([{"intent": "a", "patterns": ["^(a+)+$", "(x+x+)+y"]}])
    t0 = time.monotonic()
    assert rules.match("a" * 4000 + "!") is None and rules.match("x" * 4000) is None
    assert time.monotonic() - t0 < 1.0
    for pattern in (r"(a)\1", r"(?=a)b", r"(?<!a)b"):
        with pytest.raises(RuleError, match="bad regex.*linear time"):
            RuleSet([{"intent": "a", "patterns": [pattern]}])
    t0 = time.monotonic()
    assert extract_slot({"type": "regex", "pattern": "^(a|aa)+$"}, "a" * 4000 + "b") is None
    assert time.monotonic() - t0 < 1.0
    manifest = BASE + "triggers: [{intent: hello, patterns: ['(a)\\1']}]\n"
    with pytest.raises(ManifestError, match=r"skill.yaml:7: triggers.0.patterns.0: pattern"):
        parse_manifest(manifest)


def test_yaml_bombs_are_refused_before_they_expand():
    laughs = (
        BASE
        + 'x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "".join(
            f"x{i}: &a{i} [{','.join(f'*a{i - 1}' for _ in range(9))}]\n" for i in range(1, 9)
        )
    )
    took, msg = _elapsed(parse_manifest, laughs)
    assert took < 2 and ("aliases" in msg or "expands" in msg), msg
    deep = BASE + "deep: " + "[" * 50_000 + "]" * 50_000 + "\n"
    took, msg = _elapsed(parse_manifest, deep)
    assert took < 5 and "nests deeper than 64 levels" in msg, msg
    for n, why in (
        (60_000, "1428990 bytes, limit 1048576"),
        (2000, "intents: 2000 entries, limit 1000"),
    ):
        many = BASE.replace(
            "intents: {hello: {template: hi}}",
            "intents:\n" + "".join(f"  i{i}: {{template: x}}\n" for i in range(n)),
        )
        took, msg = _elapsed(parse_manifest, many)
        assert took < 5 and why in msg, msg


@pytest.mark.parametrize(
    "field,value,why",
    [
        ("version", "1.0.0\n", "not a semantic version"),
        ("id", "com.example.bomb\n", "reverse-DNS"),
        ("id", "com.example." + "a" * 300, "is too long"),
    ],
)
def test_schema_anchors_and_lengths(field, value, why):
    text = BASE.replace(
        f"{field}: {'1.0.0' if field == 'version' else 'com.example.bomb'}",
        f"{field}: {json.dumps(value)}",
    )
    with pytest.raises(ManifestError, match=why):
        parse_manifest(text)


def _model_bytes() -> bytes:
    clf = IntentClassifier(embeddings=None, random_state=0)
    clf.fit(["hello there", "hi bot", "lookup ticket", "find ticket"], ["a", "a", "b", "b"])
    return clf.to_bytes()


def test_model_inflation_is_bounded():
    good = _model_bytes()
    with zipfile.ZipFile(io.BytesIO(good)) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    for name, payload in (
        ("coef.npy", b"\0" * (80 * 2**20)),  # 80 MiB of zeros: about 80 KiB deflated
        (_META, b" " * (20 * 2**20)),
    ):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for n, data in members.items():
                zf.writestr(n, payload if n == name else data)
        assert len(buf.getvalue()) < 200_000
        took, msg = _elapsed(IntentClassifier.from_bytes, buf.getvalue())
        assert took < 5 and name in msg and ("ratio" in msg or "inflates" in msg), msg
    header = np_header(shape=(10**12,))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for n, data in members.items():
            zf.writestr(n, header if n == "coef.npy" else data)
    took, msg = _elapsed(IntentClassifier.from_bytes, buf.getvalue())
    assert "header claims" in msg


def np_header(shape) -> bytes:
    import numpy as np

    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    return out.getvalue()


def test_member_both_file_and_folder_and_bad_key_id(tmp_path):
    home = SkillHome(tmp_path / "home")
    home.home.mkdir()
    before = tree(home.home)
    pkg = tmp_path / "x.skill"
    pkg.write_bytes(write_archive({"skill.yaml": b"x", "responses": b"a", "responses/x": b"b"}))
    with pytest.raises(UnsafeArchiveError, match="'responses': is both a file and a folder"):
        home.install(pkg)
    assert tree(home.home) == before
    for kid in (["a", "b"], {"k": 1}, 5, ""):
        body = json.dumps({"algorithm": "ed25519", "key_id": kid, "signature": "AAAA"}).encode()
        with pytest.raises(SignatureError, match="key_id must be a short string"):
            verify_signature(b"RECORD", body, {"a": "x"})
    with pytest.raises(SignatureError, match="malformed"):
        verify_signature(b"RECORD", b"[1, 2]", {})
