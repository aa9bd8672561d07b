"""End to end against a real Daphne: log in with the dev SMS code, call `me`, open the WebSocket."""

import asyncio
import json
import re
import urllib.request

import pytest
import websockets

pytestmark = pytest.mark.django_db(transaction=True)


def post_graphql(node, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(
        f"{node.http}/graphql/",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def login_via_console_code(node, phone: str) -> dict:
    sent = post_graphql(node, "mutation($p: String!) { requestLoginCode(phone: $p) { errors { code } } }", {"p": phone})
    assert sent["data"]["requestLoginCode"]["errors"] == []
    code = re.findall(r"code is (\d{6})", node.output())[-1]  # the console SMS sender prints it
    result = post_graphql(
        node,
        "mutation($p: String!, $c: String!) { loginWithCode(phone: $p, code: $c, device: {platform: ANDROID}) "
        "{ tokens { accessToken } errors { code } } }",
        {"p": phone, "c": code},
    )["data"]["loginWithCode"]
    assert result["errors"] == []
    return result["tokens"]


def test_login_me_and_websocket_on_a_real_daphne(daphne_nodes):
    (node,) = daphne_nodes(1, SMS_SENDER="backend.accounts.sms.ConsoleSmsSender")
    tokens = login_via_console_code(node, "+8613900000001")

    me = post_graphql(node, "{ me { phone } }", token=tokens["accessToken"])
    assert me == {"data": {"me": {"phone": "+8613900000001"}}}
    anonymous = post_graphql(node, "{ me { phone } }")
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"

    async def sockets():
        async with websockets.connect(node.ws) as ws:
            await ws.send(json.dumps({"type": "auth", "token": tokens["accessToken"], "id": 1}))
            assert json.loads(await ws.recv())["type"] == "auth.ok"
            await ws.send(json.dumps({"type": "ping", "id": 2}))
            assert json.loads(await ws.recv()) == {"type": "pong", "id": 2}
        async with websockets.connect(node.ws) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "forged.token.value"}))
            assert json.loads(await ws.recv())["code"] == "TOKEN_INVALID"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 4401
        async with websockets.connect(node.ws) as ws:
            await ws.send("garbage")
            assert json.loads(await ws.recv())["code"] == "MALFORMED_FRAME"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 4400

    asyncio.run(sockets())
