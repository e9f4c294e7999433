"""The wire protocol with a hand-written client (as a Java/Node-style SDK or a custom one
speaks it): event ACK data, ping opaque, the server retiring old connections."""

from __future__ import annotations

import asyncio
import json

import httpx
import websockets

from .conftest import KEY, SECRET, t


def _open(emu, subscriptions) -> str:
    r = httpx.post(
        f"{emu.url}/v1.0/gateway/connections/open",
        json={"clientId": KEY, "clientSecret": SECRET, "subscriptions": subscriptions},
    ).json()
    return f"{r['endpoint']}?ticket={r['ticket']}"


def _ack(frame: dict, data: dict, code: int = 200) -> str:
    return json.dumps(
        {
            "code": code,
            "headers": {
                "messageId": frame["headers"]["messageId"],
                "contentType": "application/json",
            },
            "message": "OK",
            "data": json.dumps(data),
        }
    )


def test_event_ack_without_status_is_success_unless_strict(make_emulator):
    emu = make_emulator(ack_timeout=0.3, ping_interval=0)

    async def client(strict: bool) -> tuple[int, dict]:
        emu.event_ack_requires_status = strict
        eid = await asyncio.to_thread(emu.push_event, "user_add_org", {"userId": ["u1"]})
        async with websockets.connect(_open(emu, [{"type": "EVENT", "topic": "*"}])) as ws:
            frames = 0
            while frames < 3:
                try:
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 1.0 * t(1)))
                except asyncio.TimeoutError:
                    break
                assert frame["type"] == "EVENT" and frame["headers"]["eventType"] == "user_add_org"
                frames += 1
                await ws.send(_ack(frame, json.loads(frame["data"])))  # the Python SDK's ACK
            return frames, emu.push(eid)

    frames, view = asyncio.run(client(strict=False))
    assert frames == 1 and view["ack_status"] == "SUCCESS"
    frames, view = asyncio.run(client(strict=True))
    assert frames == 3 and not view["acked"]  # the protocol page's reading: status required


def test_ping_opaque_must_be_echoed_and_old_connections_are_retired(make_emulator):
    emu = make_emulator(ping_interval=0, connection_lifetime=0.5, disconnect_close_delay=0.2)

    async def client():
        async with websockets.connect(_open(emu, [])) as ws:
            await asyncio.to_thread(emu.system, "ping")
            ping = json.loads(await ws.recv())
            opaque = json.loads(ping["data"])["opaque"]
            await ws.send(_ack(ping, {"opaque": "not-the-same"}))
            await asyncio.to_thread(emu.system, "ping")
            ping = json.loads(await ws.recv())
            await ws.send(_ack(ping, json.loads(ping["data"])))
            assert opaque != json.loads(ping["data"])["opaque"]
            bye = json.loads(await asyncio.wait_for(ws.recv(), t(5)))
            assert bye["headers"]["topic"] == "disconnect"
            await asyncio.wait_for(ws.wait_closed(), t(5))

    asyncio.run(client())
    emu.wait_for(lambda: emu.connection_views()[0]["closed"], t(5))
    (conn,) = emu.connection_views()
    assert (conn["pongs"], conn["bad_pongs"]) == (1, 1)
    assert conn["closed_by"] == "server" and conn["disconnect_reason"] == "connection is expired"
