"""The documented frame schemas are the wire: every received frame is validated (tests/frames.py); these tests
show that the check bites and that the docs cover every frame type the server code can send."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backend.chat.consumers import QuanziSocketConsumer
from backend.core import realtime
from backend.core.realtime import user_group
from tests import frames

from .test_socket_chat import make, open_socket

ROOT = Path(__file__).resolve().parents[2]


def test_every_frame_type_the_server_code_builds_is_documented():
    built = set()
    for path in (ROOT / "backend").rglob("*.py"):
        built |= set(re.findall(r'"type": "([a-z][a-z0-9_.]*)"', path.read_text(encoding="utf-8")))
    # channel-layer events (handled by a consumer method of the same name) are not frames
    internal = {t for t in built if callable(getattr(QuanziSocketConsumer, t.replace(".", "_"), None))}
    internal |= {t for t in built if t.startswith(("websocket.", "http."))}  # ASGI messages to Daphne, not frames
    assert {"client.event", "chat.message"} <= internal
    assert built - internal <= set(frames.frame_validators()), built - internal - set(frames.frame_validators())


def test_the_check_refuses_unknown_frames_and_undocumented_fields():
    frames.validate_frame({"type": "pong", "id": 3})
    with pytest.raises(AssertionError, match="does not document"):
        frames.validate_frame({"type": "wallet.transfer_received"})
    with pytest.raises(AssertionError, match="does not match"):
        frames.validate_frame({"type": "pong", "extra": 1})
    with pytest.raises(AssertionError, match="does not match"):
        frames.validate_frame({"type": "auth.ok", "user_id": 1, "heartbeat_seconds": 25})  # a bare pk


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_received_frames_are_validated_and_an_undocumented_one_fails_the_test():
    (ada,), (token,) = await make("Ada")
    before = frames.validated_count[0]
    ws = await open_socket(token)
    await ws.send_json_to({"type": "ping", "id": 1})
    assert (await ws.receive_json_from(timeout=3))["type"] == "pong"
    assert frames.validated_count[0] >= before + 2
    await realtime.send_deferred([[(user_group(ada.pk), {"type": "client.event", "frame": {"type": "made.up", "x": 1}})]])
    with pytest.raises(AssertionError, match="made.up"):
        await ws.receive_json_from(timeout=3)
    await ws.disconnect()
