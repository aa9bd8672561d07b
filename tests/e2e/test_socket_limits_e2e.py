"""What a client sees from a real Daphne at the socket's edges: a wrong path, a frame too large for Daphne."""

import asyncio
import json

import pytest
import websockets

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_wrong_socket_path_is_refused_cleanly(daphne_nodes):
    (node,) = daphne_nodes(1)

    async def attempt(path: str) -> int:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(f"ws://127.0.0.1:{node.port}{path}"):
                pass
        return refused.value.response.status_code

    async def main():
        return [await attempt(path) for path in ("/ws", "/socket/", "/ws/extra/", "/")]

    assert asyncio.run(main()) == [403, 403, 403, 403]
    output = node.output()
    assert "Traceback" not in output and "ERROR" not in output and "No route found" not in output, output


def test_a_frame_above_daphnes_limit_drops_the_connection(daphne_nodes):
    """Documented outcome: above Daphne's 1 MiB (autobahn's maxMessagePayloadSize) the TCP connection is
    dropped without a close frame (1006); ours, lower, answers FRAME_TOO_LARGE first."""
    (node,) = daphne_nodes(1)

    async def main():
        async with websockets.connect(node.ws, max_size=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": "x" * (100 * 1024)}))
            assert json.loads(await ws.recv())["code"] == "FRAME_TOO_LARGE"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd.code == 4400
        async with websockets.connect(node.ws, max_size=None) as ws:
            await ws.send("x" * (1024 * 1024 + 1))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            return closed.value

    closed = asyncio.run(main())
    assert closed.rcvd is None  # no close frame: the client reports 1006 (abnormal closure)


def test_a_deeply_nested_frame_is_answered_and_the_socket_survives(daphne_nodes):
    """It used to raise RecursionError in json.loads: the socket died with 1011 and no error frame."""
    (node,) = daphne_nodes(1)

    async def main():
        async with websockets.connect(node.ws) as ws:
            await ws.send("[" * 20_000 + "]" * 20_000)
            answer = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            return answer, closed.value.rcvd.code

    answer, code = asyncio.run(main())
    assert answer["code"] == "MALFORMED_FRAME" and code == 4400  # a bad first frame, answered and closed
    assert "RecursionError" not in node.output() and "Traceback" not in node.output()
