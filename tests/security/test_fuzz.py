"""Property-based fuzzing (Hypothesis) of what reads a stranger's bytes: the package verifier,
the manifest loader, the Stream frame parser and the runtime config loader. Whatever the input,
each either accepts it or raises its own clear error type: never another exception."""

from __future__ import annotations

import io
import json
import zipfile

import yaml
from dingskill.runtime.channels.parse import FrameError, parse_robot_message
from dingskill.runtime.config import ConfigError, load_config
from dingskill.skills import ManifestError
from dingskill.skills.manifest import parse_manifest
from dingskill.skills.packaging import PackageError
from dingskill.skills.packaging.archive import write_archive
from dingskill.skills.packaging.verify import Limits, read_archive, verify_members
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FAST = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
names = st.text(alphabet="abc./\\:-_ ", min_size=0, max_size=12)  # (zipfile cuts at NUL)
SMALL = Limits(max_package_bytes=2**20, max_members=20, max_member_bytes=2**16)


@FAST
@given(st.binary(max_size=2048))
def test_package_verifier_random_bytes(data):
    try:
        verify_members(read_archive(data, SMALL), {})
    except PackageError:
        pass


@FAST
@given(st.dictionaries(names, st.binary(max_size=64), max_size=6), st.booleans())
def test_package_verifier_crafted_zips(members, with_record):
    if with_record:
        data = write_archive({k: v for k, v in members.items() if k})
    else:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, content in members.items():
                zf.writestr(name or "x", content)
        data = buf.getvalue()
    try:
        verify_members(read_archive(data, SMALL), {"k": "AAAA"})
    except PackageError:
        pass


@FAST
@given(st.one_of(st.text(max_size=300), json_values.map(lambda v: yaml.safe_dump(v))))
def test_manifest_loader(text):
    try:
        parse_manifest(text)
    except ManifestError:
        pass


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "text",
                "createAt",
                "msgtype",
                "msgId",
                "senderStaffId",
                "atUsers",
                "conversationType",
                "content",
                "sessionWebhook",
                "conversationId",
                "senderId",
                "sessionWebhookExpiredTime",
                "senderNick",
                "isInAtList",
            ]
        ),
        json_values,
        max_size=8,
    )
)
def test_frame_parser(frame):
    try:
        parse_robot_message(frame, "stream")
    except FrameError:
        pass


@FAST
@given(json_values)
def test_frame_parser_any_json(value):
    try:
        parse_robot_message(value, "stream")
    except FrameError:
        pass


@FAST
@given(
    st.one_of(
        st.text(max_size=200),
        st.dictionaries(
            st.sampled_from(
                [
                    "server",
                    "storage",
                    "channels",
                    "skills",
                    "limits",
                    "security",
                    "audit",
                    "logging",
                    "nope",
                ]
            ),
            json_values,
            max_size=4,
        ).map(json.dumps),
    ),
    st.sampled_from([".yaml", ".json"]),
)
def test_config_loader(tmp_path_factory, text, suffix):
    path = tmp_path_factory.mktemp("cfg") / f"runtime{suffix}"
    path.write_text(text, encoding="utf-8")
    try:
        load_config(path, environ={})
    except ConfigError:
        pass
