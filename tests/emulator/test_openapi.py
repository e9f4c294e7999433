"""The OpenAPI endpoints validate bodies the way the platform does and record them."""

from __future__ import annotations

import json

import httpx
import pytest
from dingskill.emulator import Emulator, EmulatorClient

from .conftest import KEY, SECRET

AI = "382e4302-551d-4880-bf29-a30acfab2e71.schema"
NO_SEND = ("dingnosendkey", "no-send-secret")


@pytest.fixture(scope="module")
def api():
    emu = Emulator({KEY: SECRET, NO_SEND[0]: NO_SEND[1]}, scopes={NO_SEND[0]: set()})
    emu.start()
    emu.register(users=["staff-1", "staff-2"], groups=["cid-group-a"])

    def token(key=KEY, secret=SECRET) -> dict:
        r = httpx.post(
            f"{emu.url}/v1.0/oauth2/accessToken", json={"appKey": key, "appSecret": secret}
        )
        return {"x-acs-dingtalk-access-token": r.json()["accessToken"]}

    client = httpx.Client(base_url=emu.url, headers=token(), timeout=10)
    yield emu, client, token
    client.close()
    emu.stop()


def _text(content: str) -> dict:
    return {"msgKey": "sampleText", "msgParam": json.dumps({"content": content})}


def test_proactive_one_to_one_and_group(api):
    emu, http, _ = api
    r = http.post(
        "/v1.0/robot/oToMessages/batchSend",
        json={"robotCode": KEY, "userIds": ["staff-1", "nobody"], **_text("审批已通过")},
    )
    assert r.status_code == 200 and r.json()["invalidStaffIdList"] == ["nobody"]
    assert r.json()["processQueryKey"]
    r = http.post(
        "/v1.0/robot/groupMessages/send",
        json={
            "robotCode": KEY,
            "openConversationId": "cid-group-a",
            "msgKey": "sampleMarkdown",
            "msgParam": json.dumps({"title": "提醒", "text": "**三点开会**"}),
        },
    )
    assert r.status_code == 200
    sent = [p for p in emu.proactive if p.get("to_user") == "staff-1" or p.get("to_group")]
    assert [p["msgParam"] for p in sent] == [
        {"content": "审批已通过"},
        {"title": "提醒", "text": "**三点开会**"},
    ]
    assert emu.openapi_requests("/v1.0/robot/groupMessages/send")[-1]["status"] == 200


@pytest.mark.parametrize(
    "path, body, status, code",
    [
        (
            "/v1.0/robot/oToMessages/batchSend",
            {"userIds": ["staff-1"], **_text("x")},
            400,
            "Missing",
        ),
        (
            "/v1.0/robot/oToMessages/batchSend",
            {"robotCode": "dingother", "userIds": ["staff-1"], **_text("x")},
            400,
            "RobotCode",
        ),
        (
            "/v1.0/robot/oToMessages/batchSend",
            {
                "robotCode": KEY,
                "userIds": ["staff-1"],
                "msgKey": "sampleText",
                "msgParam": {"content": "x"},
            },
            400,
            "MsgParam",
        ),
        (
            "/v1.0/robot/oToMessages/batchSend",
            {"robotCode": KEY, "userIds": ["staff-1"], "msgKey": "text", "msgParam": "{}"},
            400,
            "MsgKey",
        ),
        (
            "/v1.0/robot/oToMessages/batchSend",
            {"robotCode": KEY, "userIds": [f"u{i}" for i in range(21)], **_text("x")},
            400,
            "UserIds",
        ),
        (
            "/v1.0/robot/groupMessages/send",
            {"robotCode": KEY, "openConversationId": "cid-unknown", **_text("x")},
            400,
            "OpenConversationId",
        ),
        ("/v1.0/card/instances", {"outTrackId": "c1", "cardTemplateId": AI}, 400, "Missing"),
        (
            "/v1.0/card/instances",
            {"outTrackId": "c1", "cardTemplateId": AI, "cardData": {"cardParamMap": {}}},
            400,
            "Missing",  # no callbackType
        ),
        (
            "/v1.0/card/instances",
            {
                "outTrackId": "c1",
                "cardTemplateId": "made-up.schema",
                "cardData": {"cardParamMap": {}},
                "callbackType": "STREAM",
            },
            400,
            "CardTemplateId",
        ),
        (
            "/v1.0/card/instances",
            {
                "outTrackId": "c1",
                "cardTemplateId": AI,
                "cardData": {"cardParamMap": {"n": 1}},
                "callbackType": "STREAM",
            },
            400,
            "CardParamMap",
        ),
        (
            "/v1.0/card/instances/createAndDeliver",
            {
                "outTrackId": "c2",
                "cardTemplateId": AI,
                "cardData": {"cardParamMap": {}},
                "callbackType": "STREAM",
                "openSpaceId": "IM_ROBOT.staff-1",
            },
            400,
            "OpenSpaceId",
        ),
        (
            "/v1.0/robot/messageFiles/download",
            {"robotCode": KEY, "downloadCode": "nope"},
            400,
            "DownloadCode",
        ),
        (
            "/v1.0/im/v1.0/robot/interactiveCards/send",
            {
                "robotCode": KEY,
                "cardBizId": "b1",
                "cardTemplateId": "StandardCard",
                "cardData": "{}",
            },
            400,
            "InvalidParameter",  # neither a group nor a 1:1 receiver
        ),
    ],
)
def test_wrong_bodies_get_the_platform_error(api, path, body, status, code):
    _, http, _ = api
    r = http.post(path, json=body)
    assert r.status_code == status, r.text
    assert code in r.json()["code"] and r.json()["message"] and r.json()["requestid"]


def test_permission_and_token(api):
    emu, http, token = api
    r = httpx.post(
        f"{emu.url}/v1.0/robot/oToMessages/batchSend",
        headers=token(*NO_SEND),
        json={"robotCode": NO_SEND[0], "userIds": ["staff-1"], **_text("x")},
    )
    assert r.status_code == 403
    assert r.json()["accessdenieddetail"]["requiredScopes"] == ["qyapi_robot_sendmsg"]
    r = httpx.post(f"{emu.url}/v1.0/robot/groupMessages/send", json={})
    assert r.status_code == 401


def test_card_delivery_results_say_which_space_failed(api):
    emu, http, _ = api
    body = {
        "outTrackId": "c-results",
        "cardTemplateId": AI,
        "cardData": {"cardParamMap": {"content": ""}},
        "callbackType": "STREAM",
        "imGroupOpenSpaceModel": {"supportForward": True},
        "openSpaceId": "dtv1.card//IM_GROUP.cid-group-a;dtv1.card//IM_GROUP.cid-elsewhere;"
        "dtv1.card//IM_ROBOT.staff-2",
        "imGroupOpenDeliverModel": {"robotCode": KEY},
        "imRobotOpenDeliverModel": {"spaceType": "IM_ROBOT"},
    }
    r = http.post("/v1.0/card/instances/createAndDeliver", json=body)
    assert r.status_code == 200
    results = r.json()["result"]["deliverResults"]
    assert [x["success"] for x in results] == [True, False, False]
    assert (
        "not in it" in results[1]["errorMsg"] and "imRobotOpenSpaceModel" in results[2]["errorMsg"]
    )
    # the deliver endpoint: an empty robotCode in the group model fails that space
    http.post(
        "/v1.0/card/instances",
        json={
            k: body[k]
            for k in ("cardTemplateId", "cardData", "callbackType", "imGroupOpenSpaceModel")
        }
        | {"outTrackId": "c-empty-robot"},
    )
    r = http.post(
        "/v1.0/card/instances/deliver",
        json={
            "outTrackId": "c-empty-robot",
            "openSpaceId": "dtv1.card//IM_GROUP.cid-group-a",
            "imGroupOpenDeliverModel": {"robotCode": ""},
        },
    )
    assert (
        r.json()["result"][0]["success"] is False
        and "robotCode" in r.json()["result"][0]["errorMsg"]
    )
    # streaming into a card delivered nowhere is refused
    r = http.put(
        "/v1.0/card/streaming",
        json={
            "outTrackId": "c-empty-robot",
            "guid": "g",
            "key": "content",
            "content": "x",
            "isFull": True,
        },
    )
    assert r.status_code == 400


def test_session_webhook_takes_webhook_types_only(api):
    emu, _, _ = api
    msg = emu.send("你好", sender_id="staff-1")  # no bot: not pushed, but the webhook exists
    hook = emu.messages[msg].payload["sessionWebhook"]
    for bad in (
        {"msgtype": "sampleMarkdown", "sampleMarkdown": {"title": "t", "text": "x"}},
        {"msgKey": "sampleText", "msgParam": "{}"},
        {"msgtype": "markdown", "markdown": {"text": "no title"}},
        {"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x"}},
    ):
        r = httpx.post(hook, json=bad)
        assert r.json()["errcode"] != 0, bad
    ok = httpx.post(
        hook,
        json={
            "contentType": "ai_card",
            "content": {"templateId": AI, "cardData": {"content": "好"}},
        },
    )
    assert ok.json()["errcode"] == 0 and emu.replies(msg)[0]["contentType"] == "ai_card"
    assert len(emu.refused) >= 4


def test_file_download_url_is_served_locally(api):
    emu, http, _ = api
    with EmulatorClient(emu.url) as client:
        msg = client.send(msgtype="file", file_name="合同.pdf", file_bytes=b"%PDF-1.7 test")
        code = client.message(msg)["payload"]["content"]["downloadCode"]
    r = http.post(
        "/v1.0/robot/messageFiles/download", json={"robotCode": KEY, "downloadCode": code}
    )
    url = r.json()["downloadUrl"]
    assert url.startswith(emu.url) and httpx.get(url).content == b"%PDF-1.7 test"


def test_dev_api_refuses_unknown_fields_and_settings(api):
    emu, _, _ = api
    with EmulatorClient(emu.url) as client:
        with pytest.raises(ValueError, match="unknown field"):
            client.send("x", bogus=1)
        with pytest.raises(ValueError, match="unknown setting"):
            client.settings(resend=True)
        with pytest.raises(ValueError, match="msgtype"):
            client.send("x", msgtype="sticker")
