"""Cards: card instances (AI cards), interactive cards, and the clicks that come back.

Card instances, as the SDKs' ``CardReplier`` / ``AICardReplier`` call them (scope
``Card.Instance.Write``; streaming ``Card.Streaming.Write``):

* ``POST /v1.0/card/instances`` — create: ``cardTemplateId`` (a template the emulator knows:
  the SDKs' built-in ones, plus ``Emulator(card_templates=...)``), ``outTrackId`` (unique),
  ``cardData.cardParamMap`` (string values), ``callbackType`` (``STREAM`` | ``HTTP``;
  ``HTTP`` needs ``callbackRouteKey``); the space models (``imGroupOpenSpaceModel``,
  ``imRobotOpenSpaceModel``) decide where it may be delivered;
* ``POST /v1.0/card/instances/deliver`` — ``outTrackId``, ``openSpaceId``
  (``dtv1.card//IM_GROUP.<openConversationId>`` or ``dtv1.card//IM_ROBOT.<staffId>``, several
  joined by ``;``); ``IM_GROUP`` needs ``imGroupOpenDeliverModel.robotCode`` = the client id and
  a group the robot is in, ``IM_ROBOT`` needs ``imRobotOpenDeliverModel`` and a staff id of the
  organisation. A malformed ``openSpaceId`` is an error; a space that cannot take the card is a
  ``{"success": false, "errorMsg"}`` entry of the answer's ``result`` list;
* ``POST /v1.0/card/instances/createAndDeliver`` — both in one; the entries are in
  ``result.deliverResults``;
* ``PUT /v1.0/card/instances`` — update ``cardData`` / ``privateData``
  (``cardUpdateOptions.updateCardDataByKey`` merges, otherwise replaces);
* ``PUT /v1.0/card/streaming`` — ``outTrackId``, ``guid``, ``key``, ``content``, ``isFull``,
  ``isFinalize``, ``isError``; the card must have been delivered.

Interactive cards (the older kind, ``ChatbotHandler.reply_card`` / ``update_card``; scope
``qyapi_robot_sendmsg``): ``POST /v1.0/im/v1.0/robot/interactiveCards/send`` (``cardBizId``,
``robotCode``, ``cardTemplateId``, ``cardData`` as a JSON string, ``openConversationId`` or
``singleChatReceiver``) and ``PUT /v1.0/im/robots/interactiveCards``.

A click (``Emulator.card_click``) is pushed as a CALLBACK on ``/v1.0/card/instances/callback``
with the clicking user's private data (``content.cardPrivateData.params``); the ACK's
``response`` (``{"cardData": {"cardParamMap"}, "privateData": {userId: {"cardParamMap"}}}``,
as in the SDK's card-callback example) updates the stored card.
"""

from __future__ import annotations

import copy
import json
import re
import uuid

from .frames import CARD_CALLBACK_TOPIC
from .openapi import OpenApiError, json_string, require
from .state import App, Delivery, PushKind, now_ms

__all__ = ["SDK_TEMPLATES", "Cards"]

# Template ids the official SDKs use out of the box (card_instance.py, graph.py, chatbot.py).
SDK_TEMPLATES = frozenset(
    {
        "589420e2-c1e2-46ef-a5ed-b8728e654da9.schema",  # MarkdownCardInstance
        "1366a1eb-bc54-4859-ac88-517c56a9acb1.schema",  # MarkdownButtonCardInstance
        "382e4302-551d-4880-bf29-a30acfab2e71.schema",  # AIMarkdownCardInstance, carousel
        "7f538f6d-ebb7-4533-a9ac-61a32da094cf.schema",  # RPAPluginCardInstance
        "d28e2ac5-fb34-4d93-94bc-cf5c580c2d4f.schema",  # GraphHandler.reply_markdown
        "StandardCard",  # interactive cards (reply_card, set_off_duty_prompt)
    }
)
SPACE_RE = re.compile(r"^dtv1\.card//([A-Z_]+)\.(.+)$")
SPACE_TYPES = ("IM_GROUP", "IM_ROBOT", "IM_SINGLE", "ONE_BOX", "COOPERATION_FEED", "TOP_BOX")


def _param_map(data, where: str) -> dict:
    if not isinstance(data, dict) or not isinstance(data.get("cardParamMap"), dict):
        raise OpenApiError(400, "MissingParameter", f"{where}.cardParamMap (object) is required")
    bad = [k for k, v in data["cardParamMap"].items() if not isinstance(v, str)]
    if bad:
        raise OpenApiError(
            400,
            "InvalidParameter.CardParamMap",
            f"{where}.cardParamMap values must be strings (json.dumps lists/objects): {bad}",
        )
    return data["cardParamMap"]


class Cards:
    """Mixin of :class:`~dingskill.emulator.Emulator`: card store and card callbacks."""

    def _template_known(self, template: str) -> None:
        if not self.strict_cards:
            return
        if template not in self.card_templates:
            raise OpenApiError(
                400,
                "InvalidParameter.CardTemplateId",
                f"card template {template!r} does not exist (create it in the card builder; "
                "for the emulator: Emulator(card_templates=[...]) or --card-template)",
            )

    def _card(self, app: App, track: str) -> dict:
        card = self.cards.get(track)
        if card is None or card.get("app") != app.client_id:
            raise OpenApiError(
                400, "InvalidParameter.OutTrackId", f"card instance {track!r} was not created"
            )
        return card

    # ------------------------------------------------------------------ create / deliver
    def _create(self, app: App, body: dict) -> dict:
        require(body, "outTrackId", "cardTemplateId")
        track = body["outTrackId"]
        if track in self.cards:
            raise OpenApiError(
                400, "InvalidParameter.OutTrackId", f"outTrackId {track!r} already exists"
            )
        self._template_known(body["cardTemplateId"])
        params = _param_map(body.get("cardData"), "cardData")
        cb = body.get("callbackType")
        if self.strict_cards:
            if cb not in ("STREAM", "HTTP"):
                raise OpenApiError(
                    400,
                    "MissingParameter" if cb is None else "InvalidParameter.CallbackType",
                    "callbackType is required: STREAM (clicks over the Stream connection) "
                    "or HTTP (with callbackRouteKey)",
                )
            if cb == "HTTP" and not body.get("callbackRouteKey"):
                raise OpenApiError(
                    400, "MissingParameter", "callbackRouteKey is required with callbackType HTTP"
                )
        private = body.get("privateData") or {}
        for uid, pdata in private.items():
            _param_map(pdata, f"privateData.{uid}")
        card = {
            "kind": "instance",
            "app": app.client_id,
            "created": body,
            "template": body["cardTemplateId"],
            "callbackType": cb,
            "cardData": {"cardParamMap": dict(params)},
            "privateData": copy.deepcopy(private),
            "spaces": [],
            "delivered": False,
            "deliveries": [],
            "updates": [],
            "stream": [],
            "callbacks": [],
        }
        self.cards[track] = card
        return card

    def _deliver_card(self, app: App, card: dict, body: dict) -> list[dict]:
        require(body, "openSpaceId")
        results = []
        created = card["created"]
        for space in body["openSpaceId"].split(";"):
            m = SPACE_RE.match(space.strip())
            if not m or m.group(1) not in SPACE_TYPES:
                raise OpenApiError(
                    400,
                    "InvalidParameter.OpenSpaceId",
                    f"openSpaceId {space!r}: expected dtv1.card//IM_GROUP.<openConversationId> "
                    "or dtv1.card//IM_ROBOT.<staffId>",
                )
            stype, sid = m.group(1), m.group(2)
            error = self._space_problem(app, stype, sid, created, body)
            entry = {"spaceType": stype, "spaceId": sid, "success": error is None}
            if error is None:
                entry["carrierId"] = f"carrier-{uuid.uuid4().hex[:12]}"
                card["spaces"].append({"spaceType": stype, "spaceId": sid})
                card["delivered"] = True
            else:
                entry["errorMsg"] = error
            results.append(entry)
        card["deliveries"].append({"body": body, "results": results})
        return results

    def _space_problem(self, app: App, stype, sid, created, body) -> str | None:
        if not self.strict_cards:
            return None
        if stype == "IM_GROUP":
            model = body.get("imGroupOpenDeliverModel")
            if not isinstance(model, dict) or model.get("robotCode") != app.robot_code:
                return (
                    "imGroupOpenDeliverModel.robotCode must be the robot's code "
                    f"(the app's client id {app.robot_code!r})"
                )
            if not isinstance(created.get("imGroupOpenSpaceModel"), dict):
                return "the card was created without imGroupOpenSpaceModel"
            if sid not in app.groups:
                return f"group {sid!r} not found or the robot is not in it"
            return None
        if stype == "IM_ROBOT":
            if not isinstance(body.get("imRobotOpenDeliverModel"), dict):
                return "imRobotOpenDeliverModel is required for IM_ROBOT"
            if not isinstance(created.get("imRobotOpenSpaceModel"), dict):
                return "the card was created without imRobotOpenSpaceModel"
            if sid not in app.users:
                return f"user {sid!r} is not a staff id of the organisation"
            return None
        return f"space type {stype} is not emulated (IM_GROUP and IM_ROBOT are)"

    async def _card_create(self, app: App, body: dict) -> dict:
        self._create(app, body)
        return {"success": True, "result": body["outTrackId"]}

    async def _card_deliver(self, app: App, body: dict) -> dict:
        require(body, "outTrackId")
        card = self._card(app, body["outTrackId"])
        return {"success": True, "result": self._deliver_card(app, card, body)}

    async def _card_create_deliver(self, app: App, body: dict) -> dict:
        card = self._create(app, body)
        try:
            results = self._deliver_card(app, card, body)
        except OpenApiError:
            del self.cards[body["outTrackId"]]
            raise
        return {
            "success": True,
            "result": {"outTrackId": body["outTrackId"], "deliverResults": results},
        }

    async def _card_update(self, app: App, body: dict) -> dict:
        require(body, "outTrackId")
        card = self._card(app, body["outTrackId"])
        opts = body.get("cardUpdateOptions") or {}
        if "cardData" in body:
            params = _param_map(body["cardData"], "cardData")
            if opts.get("updateCardDataByKey"):
                card["cardData"]["cardParamMap"].update(params)
            else:
                card["cardData"]["cardParamMap"] = dict(params)
        for uid, pdata in (body.get("privateData") or {}).items():
            params = _param_map(pdata, f"privateData.{uid}")
            mine = card["privateData"].setdefault(uid, {"cardParamMap": {}})
            if opts.get("updatePrivateDataByKey"):
                mine["cardParamMap"].update(params)
            else:
                mine["cardParamMap"] = dict(params)
        card["updates"].append(body)
        card["updated_ms"] = now_ms()
        with self._reply_cond:
            self._reply_cond.notify_all()
        return {"success": True, "result": True}

    async def _card_stream(self, app: App, body: dict) -> dict:
        require(body, "outTrackId", "guid", "key")
        if not isinstance(body.get("content"), str):
            raise OpenApiError(400, "MissingParameter", "content (string) is required")
        for flag in ("isFull", "isFinalize", "isError"):
            if flag in body and not isinstance(body[flag], bool):
                raise OpenApiError(400, "InvalidParameter", f"{flag} must be a boolean")
        card = self._card(app, body["outTrackId"])
        if self.strict_cards and not card["delivered"]:
            raise OpenApiError(
                400, "InvalidParameter.OutTrackId", "the card was not delivered anywhere yet"
            )
        params = card["cardData"]["cardParamMap"]
        key = body["key"]
        params[key] = (
            body["content"] if body.get("isFull") else params.get(key, "") + body["content"]
        )
        card["stream"].append(
            {
                "key": key,
                "content": body["content"],
                "isFull": body.get("isFull"),
                "isFinalize": body.get("isFinalize"),
                "isError": body.get("isError"),
            }
        )
        with self._reply_cond:
            self._reply_cond.notify_all()
        return {"success": True, "result": True}

    # ------------------------------------------------------------------ interactive cards
    async def _icard_send(self, app: App, body: dict) -> dict:
        self._robot_code(app, body)
        require(body, "cardBizId", "cardTemplateId")
        self._template_known(body["cardTemplateId"])
        data = json_string(body, "cardData")
        group, single = body.get("openConversationId"), body.get("singleChatReceiver")
        if bool(group) == bool(single):
            raise OpenApiError(
                400,
                "InvalidParameter",
                "exactly one of openConversationId (group) or singleChatReceiver (1:1) is required",
            )
        if group and self.strict_cards and group not in app.groups:
            raise OpenApiError(
                400,
                "InvalidParameter.OpenConversationId",
                f"openConversationId {group!r}: no such group, or the robot is not in it",
            )
        if single:
            receiver = json_string(body, "singleChatReceiver")
            if self.strict_cards and receiver.get("userId") not in app.users:
                raise OpenApiError(
                    400,
                    "InvalidParameter.SingleChatReceiver",
                    f"singleChatReceiver.userId {receiver.get('userId')!r} is not a staff id",
                )
        self.cards[body["cardBizId"]] = {
            "kind": "interactive",
            "app": app.client_id,
            "created": body,
            "template": body["cardTemplateId"],
            "callbackType": "STREAM",
            "cardData": data,
            "privateData": {},
            "spaces": [{"openConversationId": group} if group else {"singleChatReceiver": single}],
            "delivered": True,
            "deliveries": [],
            "updates": [],
            "stream": [],
            "callbacks": [],
        }
        return {"processQueryKey": uuid.uuid4().hex}

    async def _icard_update(self, app: App, body: dict) -> dict:
        require(body, "cardBizId")
        card = self.cards.get(body["cardBizId"])
        if card is None or card["kind"] != "interactive" or card["app"] != app.client_id:
            raise OpenApiError(
                400, "InvalidParameter.CardBizId", f"no interactive card {body['cardBizId']!r}"
            )
        card["cardData"] = json_string(body, "cardData")
        card["updates"].append(body)
        return {"success": True, "result": True}

    # ------------------------------------------------------------------ clicks
    async def _card_click(
        self, track: str, user_id: str, action_id: str = "", params: dict | None = None
    ) -> str:
        card = self.cards.get(track)
        if card is None:
            raise ValueError(f"no card {track!r}")
        app = self.apps[card["app"]]
        private = (card["privateData"].get(user_id) or {}).get("cardParamMap") or {}
        content = {
            "cardPrivateData": {
                "actionIds": [action_id] if action_id else [],
                "params": {**private, **(params or {})},
            }
        }
        space = card["spaces"][0] if card["spaces"] else {}
        payload = {
            "extension": json.dumps({}),
            "corpId": app.corp_id,
            "type": "actionCallback",
            "userId": user_id,
            "userIdType": 1,
            "content": json.dumps(content, ensure_ascii=False),
            "outTrackId": track,
            "spaceType": space.get("spaceType", ""),
            "spaceId": space.get("spaceId", ""),
        }
        d = Delivery(
            f"click-{uuid.uuid4().hex}",
            uuid.uuid4().hex,
            app.client_id,
            payload,
            now_ms(),
            kind=PushKind.CARD_CALLBACK,
            topic=CARD_CALLBACK_TOPIC,
            meta={"outTrackId": track, "userId": user_id},
        )
        card["callbacks"].append(d.msg_id)
        await self._push_item(d, reliable=False)
        if card["callbackType"] == "HTTP":
            d.not_pushed = "the card's callbackType is HTTP: clicks go to its callbackRouteKey"
        return d.msg_id

    def _on_callback_response(self, m: Delivery, response) -> None:
        if m.kind is not PushKind.CARD_CALLBACK or not isinstance(response, dict):
            return
        card = self.cards.get(m.meta.get("outTrackId", ""))
        if card is None:
            return
        m.meta["response"] = response
        data = response.get("cardData")
        if isinstance(data, dict) and isinstance(data.get("cardParamMap"), dict):
            target = card["cardData"]
            if card["kind"] == "interactive":
                target.update(data)
            else:
                target["cardParamMap"].update(data["cardParamMap"])
        for uid, pdata in (response.get("privateData") or {}).items():
            if isinstance(pdata, dict) and isinstance(pdata.get("cardParamMap"), dict):
                mine = card["privateData"].setdefault(uid, {"cardParamMap": {}})
                mine["cardParamMap"].update(pdata["cardParamMap"])
        card["updates"].append({"from_callback": m.msg_id, "response": response})

    # routes (bound in server.py)
    async def _r_card_instances(self, request):
        handler = self._card_create if request.method == "POST" else self._card_update
        return await self._handle(request, handler, "Card.Instance.Write")

    async def _r_card_deliver(self, request):
        return await self._handle(request, self._card_deliver, "Card.Instance.Write")

    async def _r_card_create_deliver(self, request):
        return await self._handle(request, self._card_create_deliver, "Card.Instance.Write")

    async def _r_card_stream(self, request):
        return await self._handle(request, self._card_stream, "Card.Streaming.Write")

    async def _r_icard_send(self, request):
        return await self._handle(request, self._icard_send, "qyapi_robot_sendmsg")

    async def _r_icard_update(self, request):
        return await self._handle(request, self._icard_update, "qyapi_robot_sendmsg")
