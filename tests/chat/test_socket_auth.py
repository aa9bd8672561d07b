"""The WebSocket entry: first-frame auth, close codes, pings, bad frames (in-process, no server)."""

import datetime as dt
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from backend.accounts.ids import user_gid
from backend.accounts.models import User
from backend.accounts.services import DeviceInfo, _start_session, logout, refresh_session
from backend.asgi import application
from backend.core import clock, presence

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@database_sync_to_async
def new_session(phone="+8613900000001"):
    user = User.objects.create_user(phone, display_name="Ada")
    return _start_session(user, DeviceInfo())


async def connect(headers=None):
    communicator = WebsocketCommunicator(application, "/ws/", headers=headers or [])
    connected, code = await communicator.connect()
    assert connected, code
    return communicator


async def test_auth_with_a_valid_token_then_ping():
    session = await new_session()
    ws = await connect()
    await ws.send_json_to({"type": "auth", "token": session.access_token, "id": "a1"})
    ok = await ws.receive_json_from()
    assert ok["type"] == "auth.ok" and ok["user_id"] == user_gid(session.user) and ok["id"] == "a1"
    assert presence.is_online(session.user.pk)
    await ws.send_json_to({"type": "ping", "id": 7})
    assert await ws.receive_json_from() == {"type": "pong", "id": 7}
    await ws.disconnect()
    assert not presence.is_online(session.user.pk)


async def test_bad_token_gets_an_error_frame_and_close_4401():
    ws = await connect()
    await ws.send_json_to({"type": "auth", "token": "forged"})
    frame = await ws.receive_json_from()
    assert frame["type"] == "error" and frame["code"] == "TOKEN_INVALID"
    assert (await ws.receive_output())["code"] == 4401


async def test_first_frame_must_be_auth():
    ws = await connect()
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["code"] == "AUTH_REQUIRED"
    assert (await ws.receive_output())["code"] == 4400


async def test_garbage_first_frame_closes_4400():
    ws = await connect()
    await ws.send_to(text_data="\x00not json")
    assert (await ws.receive_json_from())["code"] == "MALFORMED_FRAME"
    assert (await ws.receive_output())["code"] == 4400


async def test_no_auth_frame_in_time_closes_4408(settings):
    settings.QUANZI = {**settings.QUANZI, "WS_AUTH_TIMEOUT_SECONDS": 0.2}
    ws = await connect()
    assert (await ws.receive_json_from(timeout=2))["code"] == "AUTH_TIMEOUT"
    assert (await ws.receive_output(timeout=2))["code"] == 4408


async def test_bad_frames_after_auth_keep_the_connection_usable(settings):
    session = await new_session()
    ws = await connect()
    await ws.send_json_to({"type": "auth", "token": session.access_token})
    await ws.receive_json_from()
    bad_frames = [
        ("{oops", "MALFORMED_FRAME"),
        (json.dumps([1, 2]), "MALFORMED_FRAME"),
        (json.dumps({"type": 5}), "MALFORMED_FRAME"),
        (json.dumps({"type": "ping", "id": {"x": 1}}), "MALFORMED_FRAME"),
        (json.dumps({"type": "teleport"}), "UNKNOWN_TYPE"),
        (json.dumps({"type": "ping", "pad": "x" * (settings.QUANZI["WS_MAX_FRAME_BYTES"] + 1)}), "FRAME_TOO_LARGE"),
    ]
    for text, code in bad_frames:
        await ws.send_to(text_data=text)
        assert (await ws.receive_json_from())["code"] == code
    await ws.send_to(bytes_data=b"\x01\x02")
    assert (await ws.receive_json_from())["code"] == "BINARY_NOT_SUPPORTED"
    await ws.send_json_to({"type": "ping", "id": "still-here"})
    assert await ws.receive_json_from() == {"type": "pong", "id": "still-here"}
    await ws.disconnect()


async def test_logout_closes_live_sockets_of_that_device():
    session = await new_session()
    ws = await connect()
    await ws.send_json_to({"type": "auth", "token": session.access_token})
    await ws.receive_json_from()
    await database_sync_to_async(logout)(device=session.device)
    assert (await ws.receive_json_from())["code"] == "SESSION_REVOKED"
    assert (await ws.receive_output())["code"] == 4403


async def test_browser_origins_must_be_allowed(settings):
    settings.WS_ALLOWED_ORIGINS = ["https://app.quanzi.example"]
    denied = WebsocketCommunicator(application, "/ws/", headers=[(b"origin", b"https://evil.example")])
    connected, _ = await denied.connect()
    assert not connected
    allowed = WebsocketCommunicator(application, "/ws/", headers=[(b"origin", b"https://app.quanzi.example")])
    connected, _ = await allowed.connect()
    assert connected
    await allowed.disconnect()


async def test_a_failing_handler_answers_internal_error_and_keeps_the_socket(monkeypatch, caplog):
    from backend.chat.consumers import QuanziSocketConsumer

    async def broken(consumer, frame):
        raise RuntimeError("bug")

    monkeypatch.setitem(QuanziSocketConsumer.handlers, "broken", broken)
    session = await new_session()
    ws = await connect()
    await ws.send_json_to({"type": "auth", "token": session.access_token})
    await ws.receive_json_from()
    await ws.send_json_to({"type": "broken", "id": "b1"})
    frame = await ws.receive_json_from()
    assert frame["code"] == "INTERNAL_ERROR" and frame["id"] == "b1" and "bug" not in frame["message"]
    assert "socket handler 'broken' failed" in caplog.text
    await ws.send_json_to({"type": "ping", "id": "after"})
    assert await ws.receive_json_from() == {"type": "pong", "id": "after"}
    await ws.disconnect()


# --- the session re-checked on heartbeats; auth.refresh ------------------------------------------------


async def authed(session):
    ws = await connect()
    await ws.send_json_to({"type": "auth", "token": session.access_token})
    ok = await ws.receive_json_from()
    assert ok["type"] == "auth.ok"
    return ws, ok


@pytest.fixture
def lost_doorbells(monkeypatch):
    """The channel layer drops every doorbell (a Redis blip): only the database can tell the socket."""
    from backend.core import realtime

    monkeypatch.setattr(realtime, "ring_on_commit", lambda *args, **kwargs: None)


async def test_auth_ok_tells_the_token_expiry(settings):
    session = await new_session()
    ws, ok = await authed(session)
    assert ok["expires_at"] == session.access_expires_at.replace(microsecond=0).isoformat()
    await ws.disconnect()


async def test_a_lost_sign_out_doorbell_still_closes_the_socket_on_the_next_heartbeat(lost_doorbells):
    session = await new_session()
    ws, _ = await authed(session)
    await database_sync_to_async(logout)(device=session.device)
    assert await ws.receive_nothing(timeout=0.2)  # the doorbell was lost
    await ws.send_json_to({"type": "ping", "id": 1})
    assert (await ws.receive_json_from())["code"] == "SESSION_REVOKED"
    assert (await ws.receive_output())["code"] == 4403


async def test_a_disabled_account_is_closed_on_the_next_heartbeat():
    session = await new_session()
    ws, _ = await authed(session)
    await database_sync_to_async(User.objects.filter(pk=session.user.pk).update)(is_active=False)
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["code"] == "ACCOUNT_DISABLED"
    assert (await ws.receive_output())["code"] == 4403


async def test_an_expired_token_is_closed_4401_on_the_next_heartbeat(settings):
    session = await new_session()
    ws, _ = await authed(session)
    clock.advance(dt.timedelta(seconds=settings.QUANZI["ACCESS_TOKEN_SECONDS"] + 1))
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["code"] == "TOKEN_EXPIRED"
    assert (await ws.receive_output())["code"] == 4401


async def test_the_server_rechecks_without_pings(settings, lost_doorbells):
    settings.QUANZI = {**settings.QUANZI, "WS_SESSION_RECHECK_SECONDS": 0.2}
    session = await new_session()
    ws, _ = await authed(session)
    await database_sync_to_async(logout)(device=session.device)
    assert (await ws.receive_json_from(timeout=3))["code"] == "SESSION_REVOKED"
    assert (await ws.receive_output(timeout=3))["code"] == 4403


async def test_the_server_keeps_rechecking_round_after_round(settings, lost_doorbells, monkeypatch):
    """Rounds that find the session alive, and a round whose database call fails, do not end the watch: a
    sign-out after them still closes the idle socket."""
    from backend.chat import consumers

    settings.QUANZI = {**settings.QUANZI, "WS_SESSION_RECHECK_SECONDS": 0.1}
    session = await new_session()
    ws, _ = await authed(session)
    assert await ws.receive_nothing(timeout=0.5)  # several rounds, the socket stays open
    real, failures = consumers.check_session, []

    def flaky(**kwargs):
        if not failures:
            failures.append(1)
            raise RuntimeError("database hiccup")
        return real(**kwargs)

    monkeypatch.setattr(consumers, "check_session", flaky)
    assert await ws.receive_nothing(timeout=0.5)
    assert failures
    await database_sync_to_async(logout)(device=session.device)
    assert (await ws.receive_json_from(timeout=3))["code"] == "SESSION_REVOKED"
    assert (await ws.receive_output(timeout=3))["code"] == 4403


async def test_auth_refresh_extends_a_long_lived_socket(settings):
    session = await new_session()
    ws, _ = await authed(session)
    lifetime = settings.QUANZI["ACCESS_TOKEN_SECONDS"]
    clock.advance(dt.timedelta(seconds=lifetime - 30))
    fresh = await database_sync_to_async(refresh_session)(refresh_token=session.refresh_token)
    await ws.send_json_to({"type": "auth.refresh", "token": fresh.access_token, "id": "r1"})
    ok = await ws.receive_json_from()
    assert ok == {"type": "auth.refresh.ok", "id": "r1",
                  "expires_at": fresh.access_expires_at.replace(microsecond=0).isoformat()}
    clock.advance(dt.timedelta(seconds=60))  # past the first token's expiry
    await ws.send_json_to({"type": "ping", "id": "p"})
    assert await ws.receive_json_from() == {"type": "pong", "id": "p"}
    await ws.disconnect()


async def test_auth_refresh_refuses_another_session_and_keeps_the_current_one(settings):
    session = await new_session()
    other_device = await database_sync_to_async(_start_session)(session.user, DeviceInfo(name="tablet"))
    stranger = await new_session("+8613900000002")
    ws, _ = await authed(session)
    for token in (other_device.access_token, stranger.access_token, "forged"):
        await ws.send_json_to({"type": "auth.refresh", "token": token, "id": "r"})
        frame = await ws.receive_json_from()
        assert frame["type"] == "error" and frame["code"] == "TOKEN_INVALID" and frame["id"] == "r"
    # The socket keeps its own session, which still expires when its own token does.
    await ws.send_json_to({"type": "ping", "id": "p"})
    assert await ws.receive_json_from() == {"type": "pong", "id": "p"}
    clock.advance(dt.timedelta(seconds=settings.QUANZI["ACCESS_TOKEN_SECONDS"] + 1))
    await ws.send_json_to({"type": "ping"})
    assert (await ws.receive_json_from())["code"] == "TOKEN_EXPIRED"
    assert (await ws.receive_output())["code"] == 4401
