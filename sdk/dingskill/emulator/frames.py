"""Frames and payloads shaped as DingTalk's Stream mode sends them."""

from __future__ import annotations

import json
import uuid

__all__ = ["ROBOT_TOPIC", "callback_frame", "system_frame", "robot_payload"]

ROBOT_TOPIC = "/v1.0/im/bot/messages/get"


def robot_payload(
    *,
    msg_id: str,
    text: str,
    sender_id: str,
    sender_nick: str,
    sender_staff_id: str,
    conversation_id: str,
    conversation_type: str,
    conversation_title: str,
    robot_code: str,
    webhook: str,
    webhook_expires_ms: int,
    create_at: int,
    at_bot: bool,
    at_users: list[dict],
    corp_id: str = "ding-emulator-corp",
    is_admin: bool = False,
    msgtype: str = "text",
) -> dict:
    """The ``data`` of a robot-message CALLBACK (ChatbotMessage fields)."""
    group = conversation_type == "group"
    body = {
        "conversationId": conversation_id,
        "chatbotCorpId": corp_id,
        "chatbotUserId": f"$:LWCP_v1:${robot_code}",
        "msgId": msg_id,
        "senderNick": sender_nick,
        "isAdmin": is_admin,
        "senderStaffId": sender_staff_id,
        "sessionWebhookExpiredTime": webhook_expires_ms,
        "createAt": create_at,
        "senderCorpId": corp_id,
        "conversationType": "2" if group else "1",
        "senderId": sender_id,
        "sessionWebhook": webhook,
        "robotCode": robot_code,
        "msgtype": msgtype,
    }
    if msgtype == "text":
        body["text"] = {"content": text}
    else:
        body["content"] = {"unknown": text}
    if group:
        body["conversationTitle"] = conversation_title
        body["isInAtList"] = at_bot
        body["atUsers"] = at_users
    return body


def callback_frame(
    app_id: str,
    connection_id: str,
    frame_id: str,
    data: dict | str,
    now_ms: int,
    topic: str = ROBOT_TOPIC,
) -> str:
    return json.dumps(
        {
            "specVersion": "1.0",
            "type": "CALLBACK",
            "headers": {
                "appId": app_id,
                "connectionId": connection_id,
                "contentType": "application/json",
                "messageId": frame_id,
                "time": str(now_ms),
                "topic": topic,
            },
            "data": data if isinstance(data, str) else json.dumps(data, ensure_ascii=False),
        },
        ensure_ascii=False,
    )


def system_frame(topic: str, connection_id: str, now_ms: int, data: dict | None = None) -> str:
    return json.dumps(
        {
            "specVersion": "1.0",
            "type": "SYSTEM",
            "headers": {
                "connectionId": connection_id,
                "contentType": "application/json",
                "messageId": uuid.uuid4().hex,
                "time": str(now_ms),
                "topic": topic,
            },
            "data": json.dumps(data or {}),
        }
    )
