"""The one WebSocket (`/ws/`). Frames are documented in docs/websocket-protocol.md.

This module only speaks the protocol: parse, authenticate, dispatch to a handler, answer. Rules live in
services. Every error frame carries a code; a bad frame never closes an authenticated connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import math
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError

from backend.accounts.services import check_session, verify_access_token
from backend.accounts.tokens import TokenExpired, TokenInvalid
from backend.core import clientip, clock, pagination, presence, realtime
from backend.core.errors import DomainError, RateLimited, ValidationFailed, camel_case_field
from backend.core.ids import decode_id, encode_id
from backend.core.jsonlimits import MAX_JSON_NESTING, nesting_exceeds
from backend.core.ratelimit import TokenBucket
from backend.core.realtime import device_group, user_group
from backend.core.values import is_int

from . import events, fanout, limits, selectors, services

log = logging.getLogger("quanzi.ws")

# Close codes (4000-4999 are ours). Stable: phones branch on them.
CLOSE_PROTOCOL_ERROR = 4400  # the first frame was not an auth frame
CLOSE_UNAUTHENTICATED = 4401  # the token was missing, invalid or expired (also mid-session); refresh, reconnect
CLOSE_AUTH_TIMEOUT = 4408  # no auth frame within WS_AUTH_TIMEOUT_SECONDS
CLOSE_SESSION_REVOKED = 4403  # the device was signed out (elsewhere) or the account disabled
CLOSE_TOO_MANY_FRAMES = 4429  # SOCKET_BUDGET_STRIKES frames in a row over the frame budget
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455: Redis (channel layer, presence) is unreachable; reconnect and resume
UNAVAILABLE = realtime.REDIS_UNAVAILABLE  # the socket cannot hear doorbells any more
HEARTBEAT_SECONDS = 25  # told to the client in auth.ok; the server re-checks the session at least this often

Handler = Callable[["QuanziSocketConsumer", dict], Awaitable[None]]

# Database calls from sockets. On PostgreSQL they run on a small thread pool (each thread borrows a connection
# from the psycopg pool for the call), so one slow call no longer queues every socket of the process behind
# it in Channels' single database thread. SQLite keeps that single thread (one writer at a time anyway).
DB_THREADS = 8
_db_executor: ThreadPoolExecutor | None = None


def db(fn):
    global _db_executor
    if not settings.IS_POSTGRES:
        return database_sync_to_async(fn)
    if _db_executor is None:
        _db_executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="chat-db")
    return database_sync_to_async(fn, thread_sensitive=False, executor=_db_executor)


async def call_service(fn, /, *args, **kwargs):
    """Run a chat service (or read) off the event loop; the doorbells it rings are sent afterwards from the
    event loop, concurrently, instead of from the database thread."""
    with realtime.deferred_rings() as rings:
        try:
            return await db(fn)(*args, **kwargs)
        finally:
            if rings:
                await realtime.send_deferred(rings)


# Admission: at most SOCKET_AUTH_CONCURRENCY sockets of a process authenticate at once (token check, groups,
# presence, baseline), the rest wait their turn in arrival order. In a reconnect storm thousands of auth frames
# arrive within a second: admitted all at once they queued thousands of database-thread trips and Redis
# commands together, the channel layer's Redis pool grew by hundreds of new connections (each a TCP and
# HELLO handshake) up to its limit (then 1013), and the event loop was so far behind that new handshakes
# missed Daphne's 5 s accept timeout and were retried. Admitted in turns, the pools stay warm and small and
# the same work finishes sooner. One semaphore per event loop (tests run a loop each).
_admissions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


async def _admitted_authentication(consumer: QuanziSocketConsumer, frame: dict) -> None:
    """The first frame arrived in time (the auth deadline is about the client, not the wait for a turn)."""
    if consumer.auth_timer is not None:
        consumer.auth_timer.cancel()
        consumer.auth_timer = None
    loop = asyncio.get_running_loop()
    gate = _admissions.get(loop)
    if gate is None:
        gate = _admissions[loop] = asyncio.Semaphore(limits.get("SOCKET_AUTH_CONCURRENCY"))
    async with gate:
        await consumer._authenticate(frame)


# Tasks started by a socket's timers when they fire (rare: a missed auth deadline, a session re-check). The
# event loop keeps only weak references to tasks; this keeps them alive until they finish.
_timer_tasks: set[asyncio.Task] = set()


def _spawn(coro) -> asyncio.Task:
    task = asyncio.ensure_future(coro)
    _timer_tasks.add(task)
    task.add_done_callback(_timer_tasks.discard)
    return task


def _valid_unicode(text_data: str, frame: dict) -> bool:
    """JSON may escape a lone surrogate ("\\ud800"): it decodes to a str that cannot be encoded as UTF-8, so
    echoing it (an `id`, an unknown `type`) or storing it would crash the socket. Only escapes can produce one."""
    if "\\ud" not in text_data and "\\uD" not in text_data:
        return True
    try:
        json.dumps(frame, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class QuanziSocketConsumer(AsyncWebsocketConsumer):
    # frame type → handler, for authenticated connections. Chat features register here.
    handlers: dict[str, Handler] = {}
    # frame type → extra cost in frame-budget tokens beyond the 1 every frame pays (for frames whose work
    # grows with what they name, such as `resume`)
    frame_costs: dict[str, Callable[[dict], int]] = {}

    async def __call__(self, scope, receive, send):
        """Whatever ends the socket — a close, a crash that Daphne turns into 1011, a cancelled task — its
        presence is cleared now, not when it would age out a minute later."""
        try:
            await self._serve(scope, receive, send)
        except UNAVAILABLE as exc:
            # The channel layer lost Redis under this socket (its doorbell inbox, a group_add): say so with a
            # code the phone can act on — reconnect with backoff, then resume — instead of Daphne's bare 1011.
            # A failed close is not swallowed: it leaves the socket open and silent until the phone gives up (it
            # did, while Daphne refused 1013, see backend/asgi.py); raised, Daphne at least closes with 1011.
            log.warning("socket closed, Redis unavailable: %r", exc)
            await send({"type": "websocket.send", "text": json.dumps(
                {"type": "error", "code": "SERVICE_UNAVAILABLE", "message": "Try again shortly.", "retry_after": 1})})
            await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})
        finally:
            await self._release()

    async def _serve(self, scope, receive, send) -> None:
        """Channels' AsyncConsumer.__call__, with one inbox instead of one task per source.

        Under Daphne (and Channels' test communicator) `receive` is the `get` of the instance's input queue:
        the node's doorbells (backend/chat/fanout.py) join that queue (`deliver_local`), so an idle socket is
        one task waiting on one queue. Elsewhere (uvicorn) a small pump moves frames into an inbox of our own.
        Events are dispatched one at a time in arrival order."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        inbox = getattr(receive, "__self__", None)
        pump = None
        if not isinstance(inbox, asyncio.Queue) or getattr(receive, "__name__", "") != "get":
            inbox = asyncio.Queue()
            pump = asyncio.ensure_future(_pump(receive, inbox))
        self._inbox: asyncio.Queue = inbox
        self._local_waiting = 0
        if self.channel_layer is not None:
            node = fanout.node_fanout(self.channel_layer)
            await node.start()
            self.channel_name = node.socket_name()
        try:
            while True:
                message = await inbox.get()
                if not message["type"].startswith("websocket."):
                    self._local_waiting -= 1
                await self.dispatch(message)
        except StopConsumer:
            pass
        finally:
            if pump is not None:
                pump.cancel()

    def deliver_local(self, event: dict) -> bool:
        """A doorbell from the node's fan-out joins the socket's inbox, unless `INBOX_CAPACITY` wait already."""
        if self._local_waiting >= fanout.INBOX_CAPACITY:
            return False
        self._local_waiting += 1
        self._inbox.put_nowait(event)
        return True

    async def connect(self):
        self.frame_budget = TokenBucket(capacity=limits.get("SOCKET_FRAME_BUDGET"),
                                        per_second=limits.get("SOCKET_FRAME_REFILL_PER_SECOND"))
        self.budget_strikes = 0
        self.user = None
        self.device_id: int | None = None  # the id only: a Device instance per idle socket costs ~1 KB
        self.chat_seen: dict[int, int] = {}
        self.chat_held: dict[int, dict[int, dict]] | None = None  # doorbells waiting for earlier ones (rare)
        self.chat_floor: dict[int, int] = {}
        self.chat_left: set[int] = set()
        self.chat_groups: set[int] = set()  # conversation groups this socket is subscribed to
        self.client_ip = clientip.from_scope(self.scope)  # X-Forwarded-For only through TRUSTED_PROXIES
        await self.accept()
        # Timers are loop.call_later handles (~0.2 KB), not a task sleeping per socket (~2 KB with its
        # coroutine and future, and a cancelled one kept its traceback): see docs/architecture.md, speed.
        self.auth_timer = asyncio.get_running_loop().call_later(settings.QUANZI["WS_AUTH_TIMEOUT_SECONDS"],
                                                                self._auth_deadline_due)

    def _auth_deadline_due(self) -> None:
        self.auth_timer = None
        if self.user is None and not getattr(self, "released", False):
            self.auth_timer = _spawn(self._auth_deadline())

    async def _auth_deadline(self):
        if self.user is None:
            await self.send_error("AUTH_TIMEOUT", "No auth frame received in time.")
            await self.close(code=CLOSE_AUTH_TIMEOUT)

    async def disconnect(self, code):
        await self._release()

    async def _release(self) -> None:
        """Once per socket, each step on its own so one failing cannot skip the next. The node forgets the
        socket first, synchronously (Daphne cancels a closing application after its close timeout, and a storm
        of closes queues thousands of database trips); then presence (other users' pushes depend on it), the
        node's group leaves, and telling co-members."""
        if getattr(self, "released", False):
            return
        self.released = True
        for timer in (getattr(self, "auth_timer", None), getattr(self, "session_timer", None)):
            if timer is not None and timer is not asyncio.current_task():
                timer.cancel()
        followed = list(getattr(self, "own_groups", ()))
        followed += [events.conversation_group(c) for c in getattr(self, "chat_groups", ())]
        node = fanout.node_fanout(self.channel_layer) if getattr(self, "channel_layer", None) is not None else None
        emptied = node.drop(self, followed) if node is not None else []
        user = getattr(self, "user", None)
        if user is not None:
            try:
                await db(presence.socket_closed)(user.pk, self.channel_name)
            except Exception:
                log.exception("presence not cleared for user %s (it ages out)", user.pk)
        if emptied:
            await asyncio.gather(*(node.leave_unfollowed(g) for g in emptied), return_exceptions=True)
        if user is not None:
            try:
                await chat_socket_closed(self)
            except Exception:
                log.exception("offline presence not announced for user %s", user.pk)

    async def dispatch(self, message):
        """Channels' dispatch without its `aclose_old_connections()` before every event: that is one trip
        through Channels' single sync thread per doorbell per socket (200 per message in a 200-member group,
        all queued on one thread). This consumer never touches the database on the event loop; every call
        goes through `db()` (database_sync_to_async), which closes stale connections in its own thread around
        the call."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # --- frames out ---------------------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=events.encode_frame(frame))

    async def send_error(self, code: str, message: str, *, frame_id: object = None, **extra) -> None:
        frame = {"type": "error", "code": code, "message": message, **extra}
        if frame_id is not None:
            frame["id"] = frame_id
        await self.send_frame(frame)

    # --- frames in ----------------------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None):
        if not await self._spend(1):
            return
        frame = await self._parse(text_data, bytes_data)
        if frame is None:
            return
        frame_id = frame.get("id")
        if self.user is None:
            await _admitted_authentication(self, frame)
            return
        handler = self.handlers.get(frame["type"])
        if handler is None:
            await self.send_error("UNKNOWN_TYPE", f"Unknown frame type {frame['type'][:40]!r}.", frame_id=frame_id)
            return
        extra_cost = self.frame_costs.get(frame["type"])
        if extra_cost is not None and not await self._spend(extra_cost(frame), frame_id=frame_id):
            return
        try:
            await handler(self, frame)
        except DomainError as exc:
            extra = {"retry_after": exc.retry_after} if isinstance(exc, RateLimited) else {}
            await self.send_error(exc.code, exc.message, frame_id=frame_id, field=camel_case_field(exc.field),
                                  **extra)
        except UNAVAILABLE as exc:
            # Redis (the send rate limit's counter, presence) is down: nothing was stored — sends commit only
            # after those checks — so the phone sends again with the same client_msg_id after retry_after.
            log.warning("socket %r refused, Redis unavailable: %r", frame["type"][:40], exc)
            await self.send_error("SERVICE_UNAVAILABLE", "Try again shortly.", frame_id=frame_id, retry_after=1)
        except Exception:
            # A bug in one handler must not cost the user their connection (and the other conversations on
            # it): log it loudly, answer that frame with INTERNAL_ERROR, keep the socket.
            log.exception("socket handler %r failed for user %s", frame["type"][:40], self.user.pk)
            await self.send_error("INTERNAL_ERROR", "Something went wrong on our side.", frame_id=frame_id)

    async def _spend(self, cost: int, *, frame_id: object = None) -> bool:
        """Charge the socket's frame budget. Over budget: RATE_LIMITED with `retry_after` (the connection
        stays), and after SOCKET_BUDGET_STRIKES refusals in a row, close 4429."""
        wait = self.frame_budget.take(cost)
        if not wait:
            self.budget_strikes = 0
            return True
        self.budget_strikes += 1
        if self.budget_strikes > limits.get("SOCKET_BUDGET_STRIKES"):
            if self.budget_strikes == limits.get("SOCKET_BUDGET_STRIKES") + 1:
                await self.send_error("RATE_LIMITED", "Too many frames: closing.", frame_id=frame_id)
                await self.close(code=CLOSE_TOO_MANY_FRAMES)
            return False
        await self.send_error("RATE_LIMITED", "Too many frames on this connection; slow down.", frame_id=frame_id,
                              retry_after=max(1, math.ceil(min(wait, 3600))))
        return False

    async def _parse(self, text_data: str | None, bytes_data: bytes | None) -> dict | None:
        """The frame as a dict, or None after answering why not (and, before auth, closing with 4400: a client
        that cannot send one good first frame gets no second chance). Size and nesting are checked before the
        JSON is parsed, so no frame can make the parser recurse or allocate without bound."""
        if bytes_data is not None:
            await self._refuse("BINARY_NOT_SUPPORTED", "Send JSON text frames.")
            return None
        limit = settings.QUANZI["WS_MAX_FRAME_BYTES"]
        if len(text_data) > limit or len(text_data.encode("utf-8", "surrogatepass")) > limit:
            await self._refuse("FRAME_TOO_LARGE", f"Frames are limited to {limit} bytes.")
            return None
        if nesting_exceeds(text_data):
            await self._refuse("MALFORMED_FRAME", f"Frames nest at most {MAX_JSON_NESTING} levels of arrays and objects.")
            return None
        try:
            frame = json.loads(text_data)
        except ValueError:
            frame = None
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str) or not _valid_unicode(text_data, frame):
            await self._refuse("MALFORMED_FRAME", 'Frames are JSON objects with a string "type".')
            return None
        if frame.get("id") is not None and not isinstance(frame["id"], str | int):
            await self._refuse("MALFORMED_FRAME", "`id` must be a string or an integer.")
            return None
        return frame

    async def _refuse(self, code: str, message: str) -> None:
        await self.send_error(code, message)
        if self.user is None:
            await self.close(code=CLOSE_PROTOCOL_ERROR)

    async def _authenticate(self, frame: dict) -> None:
        if frame["type"] != "auth":
            await self.send_error("AUTH_REQUIRED", 'The first frame must be {"type":"auth","token":...}.')
            await self.close(code=CLOSE_PROTOCOL_ERROR)
            return
        try:
            grant = await db(verify_access_token)(frame.get("token"))
        except DomainError as exc:
            await self.send_error(exc.code, exc.message, frame_id=frame.get("id"))
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        user = self.user = grant.user
        self.device_id = grant.device.pk
        self.session_generation, self.session_expires_at = grant.generation, grant.expires_at
        self._schedule_session_check()
        self.own_groups = (user_group(user.pk), device_group(self.device_id))
        node = fanout.node_fanout(self.channel_layer)
        await asyncio.gather(*(node.follow(self, group) for group in self.own_groups))
        await self.on_authenticated()
        ok = {"type": "auth.ok", "user_id": events.user_gid(user.pk), "heartbeat_seconds": HEARTBEAT_SECONDS,
              "expires_at": self.session_expires_at.isoformat()}
        if frame.get("id") is not None:
            ok["id"] = frame["id"]
        await self.send_frame(ok)

    # --- the session, re-checked ------------------------------------------------------------------
    #
    # A sign-out reaches a live socket by a doorbell (session_revoked); if that is lost, or the account is
    # disabled, or the token simply expires, the socket finds out on its next heartbeat: every ping, and a
    # server-side timer for clients that stop pinging, re-check the session against the database and the clock.

    async def recheck_session(self) -> bool:
        """False (and the socket closed with its code) when the session has ended."""
        try:
            await db(check_session)(user_id=self.user.pk, device_id=self.device_id,
                                    generation=self.session_generation, expires_at=self.session_expires_at)
        except DomainError as exc:
            await self.end_session(exc)
            return False
        return True

    async def end_session(self, exc: DomainError) -> None:
        if getattr(self, "session_ended", False):
            return
        self.session_ended = True
        timer = getattr(self, "session_timer", None)
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()
        if isinstance(exc, TokenExpired):
            await self.send_error(exc.code, "The access token expired; send auth.refresh before it does.")
            await self.close(code=CLOSE_UNAUTHENTICATED)
        elif exc.code == "ACCOUNT_DISABLED":
            await self.send_error(exc.code, exc.message)
            await self.close(code=CLOSE_SESSION_REVOKED)
        else:
            await self.send_error("SESSION_REVOKED", "This device was signed out.")
            await self.close(code=CLOSE_SESSION_REVOKED)

    def _schedule_session_check(self) -> None:
        """The next server-side re-check: every WS_SESSION_RECHECK_SECONDS, or at the token's expiry if that
        is sooner. `session_timer` is the waiting handle, then the running check's task (both cancel)."""
        interval = float(settings.QUANZI.get("WS_SESSION_RECHECK_SECONDS", HEARTBEAT_SECONDS))
        until_expiry = (self.session_expires_at - clock.now()).total_seconds()
        self.session_timer = asyncio.get_running_loop().call_later(max(0.0, min(interval, until_expiry)),
                                                                   self._session_check_due)

    def _session_check_due(self) -> None:
        self.session_timer = _spawn(self._session_check())

    async def _session_check(self) -> None:
        try:
            alive = await self.recheck_session()
        except asyncio.CancelledError:
            raise
        except Exception:  # a database hiccup must not kill the watch; the next round retries
            log.warning("session re-check failed for device %s", self.device_id, exc_info=True)
            alive = True
        if alive and not getattr(self, "released", False) and not getattr(self, "session_ended", False):
            self._schedule_session_check()

    async def on_authenticated(self) -> None:
        """Mark the socket present, take the seq baseline of every conversation (live delivery is gapless from
        here; older messages come through `resume`) and tell co-members this user is online."""
        await chat_socket_opened(self)

    # --- events from the channel layer ----------------------------------------------------------

    async def client_event(self, event):
        """Any app rings `{"type": "client.event", "frame": {...}}` on a user group to push a frame."""
        await self.send_frame(event["frame"])

    # chat doorbells (backend/chat/events.py); the database stays the truth
    async def chat_message(self, event):
        await on_chat_message(self, event)

    async def chat_gap(self, event):
        await on_chat_gap(self, event)

    async def chat_relay(self, event):
        if event["conversation"] not in self.chat_left and addressed_to(self, event):
            await self.send(text_data=_event_text(event))

    async def chat_membership(self, event):
        await on_chat_membership(self, event)

    async def session_revoked(self, event):
        await self.end_session(TokenInvalid())

    async def node_unavailable(self, event):
        """The node's channel-layer reader lost Redis: this socket hears no doorbells any more (1013 follows)."""
        raise RedisConnectionError(event.get("error", "channel layer unavailable"))


def heartbeat_reads(user_id: int, device_id: int, generation: int, expires_at: dt.datetime,
                    channel_name: str) -> dict[int, tuple[int, int, bool]]:
    """A ping's database work in one trip to a database thread instead of three (every socket pings every
    HEARTBEAT_SECONDS: 5,000 idle sockets are 200 pings a second): the session re-checked (raises when it has
    ended), presence refreshed, then the seq heads the catch-up compares with."""
    check_session(user_id=user_id, device_id=device_id, generation=generation, expires_at=expires_at)
    presence.socket_alive(user_id, channel_name)
    return selectors.socket_heads(user_id)


async def handle_ping(consumer: QuanziSocketConsumer, frame: dict) -> None:
    """Heartbeat: re-checks the session (signed out, disabled, expired?), keeps presence fresh on every node,
    and delivers whatever a lost doorbell left behind."""
    try:
        heads = await db(heartbeat_reads)(consumer.user.pk, consumer.device_id, consumer.session_generation,
                                          consumer.session_expires_at, consumer.channel_name)
    except DomainError as exc:
        await consumer.end_session(exc)
        return
    pong = {"type": "pong"}
    if frame.get("id") is not None:
        pong["id"] = frame["id"]
    await consumer.send_frame(pong)
    await chat_heartbeat_catch_up(consumer, heads)


async def handle_auth_refresh(consumer: QuanziSocketConsumer, frame: dict) -> None:
    """A long-lived socket presents a fresh access token (from refreshTokens) before the old one expires.

    The token must be this socket's user and device; a bad one is answered with an error and the socket keeps
    its current session until that expires.
    """
    grant = await db(verify_access_token)(frame.get("token"))
    if grant.user.pk != consumer.user.pk or grant.device.pk != consumer.device_id:
        raise TokenInvalid("This token belongs to another session.", field="token")
    consumer.user = grant.user
    consumer.session_generation, consumer.session_expires_at = grant.generation, grant.expires_at
    await consumer.send_frame(_reply(frame, {"type": "auth.refresh.ok",
                                             "expires_at": grant.expires_at.isoformat()}))


QuanziSocketConsumer.handlers["ping"] = handle_ping
QuanziSocketConsumer.handlers["auth.refresh"] = handle_auth_refresh


# --- chat ---------------------------------------------------------------------------------------------
#
# Per socket: `chat_seen[conversation] = last seq delivered` (gapless from the baseline taken at auth),
# `chat_floor` = that baseline (so `resume` does not repeat what was already delivered live), and
# `chat_left` = conversations this socket was told it left (their doorbells are dropped at once).


def _reply(frame: dict, answer: dict) -> dict:
    if frame.get("id") is not None:
        answer["id"] = frame["id"]
    return answer


def _conversation_pk(frame: dict, key: str = "conversation_id") -> int:
    return decode_id(frame.get(key), type_name=events.CONVERSATION, field=key)


def _int_field(frame: dict, key: str, *, code: str, required: bool = True) -> int | None:
    value = frame.get(key)
    if value is None and not required:
        return None
    if not is_int(value, minimum=0):
        raise ValidationFailed(f"`{key}` must be a non-negative integer.", code=code, field=key)
    return value


def _event_text(event: dict) -> str:
    """A doorbell's frame, encoded once by the sender (`text`); a node still on the previous release rings
    the frame itself (`frame`) during a rolling deploy."""
    text = event.get("text")
    return text if text is not None else events.encode_frame(event["frame"])


def addressed_to(consumer: QuanziSocketConsumer, event: dict) -> bool:
    """A conversation-group doorbell names the members it is for (computed when it was committed)."""
    to = event.get("to")
    return to is None or consumer.user.pk in to


async def _pump(receive, inbox: asyncio.Queue) -> None:
    """Frames from a server whose `receive` is not a queue's `get` (uvicorn) into the socket's inbox."""
    while True:
        message = await receive()
        inbox.put_nowait(message)
        if message["type"] == "websocket.disconnect":
            return


async def _subscribe(consumer: QuanziSocketConsumer, conversations: list[int]) -> None:
    new = [c for c in conversations if c not in consumer.chat_groups]
    consumer.chat_groups.update(new)
    gate = asyncio.Semaphore(16)

    node = fanout.node_fanout(consumer.channel_layer)

    async def add(conversation: int) -> None:
        async with gate:
            await node.follow(consumer, events.conversation_group(conversation))

    results = await asyncio.gather(*(add(c) for c in new), return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:  # the heartbeat's seq comparison still delivers everything, just later
        log.warning("%d conversation subscriptions failed: %r", len(failed), failed[0])


async def _unsubscribe(consumer: QuanziSocketConsumer, conversation: int) -> None:
    if conversation in consumer.chat_groups:
        consumer.chat_groups.discard(conversation)
        try:
            await fanout.node_fanout(consumer.channel_layer).unfollow(consumer, events.conversation_group(conversation))
        except Exception:  # doorbells that still arrive are not addressed to this user and are dropped
            log.warning("conversation unsubscribe failed", exc_info=True)


def socket_opened_reads(user_id: int, channel_name: str) -> dict[int, tuple[int, int, bool]]:
    """The socket marked present, its seq baseline, and co-members told it is online: one trip to a database
    thread instead of three (a reconnect storm opens thousands of sockets a second; each trip costs the event
    loop a hand-over to the pool and the thread a pooled connection). The online doorbells leave after the
    trip (call_service)."""
    presence.socket_alive(user_id, channel_name)
    heads = selectors.socket_heads(user_id)
    services.announce_presence(user_id=user_id, online=True)
    return heads


async def chat_socket_opened(consumer: QuanziSocketConsumer) -> None:
    # Announced before the conversation groups are followed: what a co-member sends meanwhile is after the
    # baseline, so the client's resume (after auth.ok) or the next heartbeat delivers it.
    heads = await call_service(socket_opened_reads, consumer.user.pk, consumer.channel_name)
    consumer.chat_seen = {conv: last for conv, (last, _, _) in heads.items()}
    consumer.chat_floor = dict(consumer.chat_seen)
    consumer.chat_left = set()
    await _subscribe(consumer, [conv for conv, (_, _, fanout) in heads.items() if fanout])


def socket_closed_announce(user_id: int) -> None:
    """Co-members told the user went offline, if this was their last live socket (one database-thread trip)."""
    if not presence.is_online(user_id):
        services.announce_presence(user_id=user_id, online=False)


async def chat_socket_closed(consumer: QuanziSocketConsumer) -> None:
    await call_service(socket_closed_announce, consumer.user.pk)


async def _deliver_missing(consumer: QuanziSocketConsumer, conversation: int, upto: int | None = None) -> None:
    """Fill a gap from the database (a doorbell was lost, or arrived out of order from another node)."""
    after = consumer.chat_seen.get(conversation, 0)
    found = await db(selectors.catch_up)(consumer.user.pk, conversation, after, upto)
    if not found.member:
        consumer.chat_seen.pop(conversation, None)
        return
    if found.too_far:
        consumer.chat_seen[conversation] = found.head
        await consumer.send_frame({"type": "resync", "conversation_id": events.conversation_gid(conversation),
                                   "last_seq": found.head})
        return
    for message in found.messages:
        if message.seq > consumer.chat_seen.get(conversation, 0):
            consumer.chat_seen[conversation] = message.seq
            await consumer.send_frame(events.message_frame(message))
    # Seqs up to the head that the database did not return are hidden from this user (a blocked peer's
    # messages, core.reach): count them as seen so every heartbeat does not look for them again.
    consumer.chat_seen[conversation] = max(consumer.chat_seen.get(conversation, 0), found.head)


# Doorbells of one conversation can arrive out of order: concurrent senders ring after their own commits,
# through different Redis connections (and nodes). A doorbell past a gap waits up to REORDER_WAIT_SECONDS for
# the ones before it instead of sending the socket to the database at once: in a 200-member group with four
# senders every reordering sent all 200 sockets to the database (a third of the server's CPU in some runs,
# bench/chat.py). What does not arrive in time is read from the database, as before.
REORDER_WAIT_SECONDS = 0.1
REORDER_HOLD_MAX = 50  # doorbells held per conversation and socket; one more goes to the database at once


async def on_chat_message(consumer: QuanziSocketConsumer, event: dict) -> None:
    conversation, seq = event["conversation"], event["seq"]
    if conversation in consumer.chat_left or not addressed_to(consumer, event):
        return
    seen = consumer.chat_seen.get(conversation)
    if seen is not None and seq <= seen:
        return  # already delivered (by a catch-up, or a duplicate doorbell)
    if seen is not None and seq == seen + 1:
        consumer.chat_seen[conversation] = seq
        await consumer.send(text_data=_event_text(event))
        await _release_held(consumer, conversation)
        return
    if seen is not None and _hold(consumer, conversation, event):
        return
    # A gap held too long, or a conversation this socket has not heard of: the database decides (and checks
    # membership).
    await _deliver_missing(consumer, conversation, upto=seq)
    await _release_held(consumer, conversation)


def _hold(consumer: QuanziSocketConsumer, conversation: int, event: dict) -> bool:
    """Keep a doorbell that arrived before the ones it follows; the first one held for a conversation sets a
    timer that rings `chat.gap` on the socket's own inbox (handled in turn, as any doorbell)."""
    if consumer.chat_held is None:
        consumer.chat_held = {}
    waiting = consumer.chat_held.setdefault(conversation, {})
    if len(waiting) >= REORDER_HOLD_MAX:
        return False
    if not waiting:
        asyncio.get_running_loop().call_later(REORDER_WAIT_SECONDS, consumer.deliver_local,
                                              {"type": "chat.gap", "conversation": conversation})
    waiting[event["seq"]] = event
    return True


async def _release_held(consumer: QuanziSocketConsumer, conversation: int) -> None:
    """Send the held doorbells that now follow on; drop those already delivered (or of a conversation left)."""
    waiting = consumer.chat_held.get(conversation) if consumer.chat_held else None
    if not waiting:
        return
    while waiting:
        seen = consumer.chat_seen.get(conversation)
        if seen is None:
            waiting.clear()
            break
        for seq in [seq for seq in waiting if seq <= seen]:
            del waiting[seq]
        following = waiting.pop(seen + 1, None)
        if following is None:
            break
        consumer.chat_seen[conversation] = seen + 1
        await consumer.send(text_data=_event_text(following))
    if not waiting:
        consumer.chat_held.pop(conversation, None)


async def on_chat_gap(consumer: QuanziSocketConsumer, event: dict) -> None:
    """The wait for missing doorbells is over: what is still held past a gap comes from the database."""
    conversation = event["conversation"]
    waiting = consumer.chat_held.get(conversation) if consumer.chat_held else None
    if not waiting:
        return
    await _deliver_missing(consumer, conversation, upto=max(waiting))
    await _release_held(consumer, conversation)


async def on_chat_membership(consumer: QuanziSocketConsumer, event: dict) -> None:
    conversation = event["conversation"]
    gid = events.conversation_gid(conversation)
    if event["joined"]:
        consumer.chat_left.discard(conversation)
        consumer.chat_seen[conversation] = max(event["seq"] - 1, 0)
        consumer.chat_floor[conversation] = consumer.chat_seen[conversation]
        await consumer.send_frame({"type": "conversation.joined", "conversation_id": gid, "seq": event["seq"]})
        if event.get("subscribe"):
            # Doorbells rung before the subscription took effect are read from the database; later ones are
            # heard (duplicates are dropped by seq).
            await _subscribe(consumer, [conversation])
            await _deliver_missing(consumer, conversation)
    else:
        consumer.chat_left.add(conversation)
        consumer.chat_seen.pop(conversation, None)
        await _release_held(consumer, conversation)  # drops them
        await consumer.send_frame({"type": "conversation.left", "conversation_id": gid, "reason": event["reason"]})
        await _unsubscribe(consumer, conversation)


async def chat_heartbeat_catch_up(consumer: QuanziSocketConsumer, heads: dict[int, tuple[int, int, bool]]) -> None:
    """Every heartbeat compares the socket's seqs with the database (`heads`, read with the ping), so even a
    lost doorbell for the newest message (nothing after it to reveal the gap) is delivered within one heartbeat."""
    for conversation in set(consumer.chat_seen) - set(heads):
        consumer.chat_seen.pop(conversation, None)  # left while a doorbell was lost
        consumer.chat_left.add(conversation)
    for conversation in consumer.chat_groups - set(heads):
        await _unsubscribe(consumer, conversation)
    await _subscribe(consumer, [conv for conv, (_, _, fanout) in heads.items() if fanout])
    for conversation, (last_seq, visible_from, _) in heads.items():
        if conversation not in consumer.chat_seen:
            consumer.chat_left.discard(conversation)
            consumer.chat_seen[conversation] = consumer.chat_floor[conversation] = visible_from - 1
        if last_seq > consumer.chat_seen[conversation]:
            await _deliver_missing(consumer, conversation)
    for conversation in list(consumer.chat_held or ()):
        await _release_held(consumer, conversation)


async def handle_send(consumer: QuanziSocketConsumer, frame: dict) -> None:
    conversation = _conversation_pk(frame)
    mentions = frame.get("mentions") or []
    if not isinstance(mentions, list):
        raise ValidationFailed("mentions is a list of user ids.", code="INVALID_MENTIONS", field="mentions")
    result = await call_service(
        services.send_message, conversation_id=conversation, sender=consumer.user, client_msg_id=frame.get("client_msg_id"),
        kind=frame.get("kind", "text"), text=frame.get("text"), attachment=frame.get("attachment"),
        reply_to_seq=frame.get("reply_to_seq"),
        mention_ids=[events.decode_user(m, field="mentions") for m in mentions[:100]],
    )
    message = result.message
    await consumer.send_frame(_reply(frame, {
        "type": "ack", "conversation_id": events.conversation_gid(message.conversation_id),
        "message_id": encode_id(events.MESSAGE, message.pk), "seq": message.seq,
        "client_msg_id": message.client_msg_id, "created_at": message.created_at.isoformat(),
        "duplicate": not result.created,
    }))


async def handle_read(consumer: QuanziSocketConsumer, frame: dict) -> None:
    conversation = _conversation_pk(frame)
    seq = _int_field(frame, "seq", code="INVALID_SEQ")
    seat = await call_service(services.mark_read, conversation_id=conversation, user=consumer.user, seq=seq)
    unread = selectors.unread_count(seat)  # arithmetic on the seat and its conversation, loaded with it
    await consumer.send_frame(_reply(frame, {"type": "read.ok", "conversation_id": frame["conversation_id"],
                                             "seq": seat.last_read_seq, "unread": unread}))


async def handle_typing(consumer: QuanziSocketConsumer, frame: dict) -> None:
    conversation = _conversation_pk(frame)
    await call_service(services.relay_typing, conversation_id=conversation, user=consumer.user)


def _parse_resume(frame: dict) -> tuple[dict[int, tuple[int, int | None]], list[str], dict[int, str]]:
    wanted = frame.get("conversations")
    if not isinstance(wanted, dict) or len(wanted) > limits.get("RESUME_MAX_CONVERSATIONS"):
        raise ValidationFailed(
            f'"conversations" maps at most {limits.get("RESUME_MAX_CONVERSATIONS")} conversation ids to a seq.',
            code="INVALID_RESUME", field="conversations")
    parsed: dict[int, tuple[int, int | None]] = {}
    unknown: list[str] = []
    names: dict[int, str] = {}
    for gid, value in wanted.items():
        seq, change = (value.get("seq"), value.get("change")) if isinstance(value, dict) else (value, None)
        if not is_int(seq, minimum=0) or (change is not None and not is_int(change, minimum=0)):
            raise ValidationFailed("Each conversation maps to a non-negative seq (or {seq, change}).",
                                   code="INVALID_RESUME", field=f"conversations.{gid[:60]}")
        try:
            pk = decode_id(gid, type_name=events.CONVERSATION)
        except DomainError:
            unknown.append(gid[:200])
            continue
        parsed[pk], names[pk] = (seq, change), gid
    return parsed, unknown, names


def _added_after(frame: dict) -> dt.datetime | None:
    """The `added_cursor` of the client's last `resume.done`, if it sent one."""
    try:
        raw = pagination.decode_cursor(frame.get("added_after"), kind="joined", field="added_after")
        moment = dt.datetime.fromisoformat(raw) if raw is not None else None
    except (DomainError, ValueError) as exc:
        raise ValidationFailed("added_after is the added_cursor of an earlier resume.done.",
                               code="INVALID_RESUME", field="added_after") from exc
    if moment is not None and moment.tzinfo is None:
        raise ValidationFailed("added_after is the added_cursor of an earlier resume.done.",
                               code="INVALID_RESUME", field="added_after")
    return moment


async def _replay(consumer: QuanziSocketConsumer, plan: selectors.ResumePlan, conversation: int, gid: str) -> dict:
    """One conversation's replay: missed messages (or `resync`), then a page of edits/recalls. Returns its
    entry in `resume.done`."""
    last_seq, last_change = plan.heads[conversation]
    if conversation in plan.resync:
        await consumer.send_frame({"type": "resync", "conversation_id": gid, "last_seq": last_seq})
    floor = consumer.chat_floor.get(conversation, 0)
    seen = consumer.chat_seen.get(conversation, 0)
    for message in plan.replay.get(conversation, []):
        if not floor < message.seq <= seen:  # those were delivered live on this socket already
            await consumer.send_frame(events.message_frame(message))
    for message in plan.changed.get(conversation, []):
        await consumer.send_frame(events.change_frame(message))
    consumer.chat_seen[conversation] = max(seen, last_seq)
    consumer.chat_left.discard(conversation)
    entry = {"last_seq": last_seq, "last_change": last_change}
    if conversation in plan.more_changes:
        entry["more_changes"] = True
    return entry


async def handle_resume(consumer: QuanziSocketConsumer, frame: dict) -> None:
    """Replay what the client missed, in seq order per conversation, or tell it to resync; then announce the
    conversations it was added to since its last resume (`added_after`) that it did not name, with theirs."""
    wanted, unknown, names = _parse_resume(frame)
    added_after = _added_after(frame)
    plan = await db(selectors.resume_plan)(consumer.user.pk, wanted, added_after=added_after)
    done: dict[str, dict] = {}
    for conversation in wanted:
        if conversation in plan.not_found:
            unknown.append(names[conversation])
            continue
        done[names[conversation]] = await _replay(consumer, plan, conversation, names[conversation])
    for seat in plan.added:
        gid = events.conversation_gid(seat.conversation_id)
        peer = selectors.peer_of(seat)  # prefetched with the seat
        await consumer.send_frame(events.conversation_added_frame(
            seat, title=selectors.title_of(seat), peer_id=peer.pk if peer else None,
            unread=selectors.unread_count(seat), muted=seat.is_muted))
        done[gid] = await _replay(consumer, plan, seat.conversation_id, gid)
    answer = {"type": "resume.done", "conversations": done, "not_found": unknown,
              "added_cursor": pagination.encode_cursor("joined", plan.added_cursor.isoformat())}
    if plan.added_more:
        answer["added_more"] = True
    await consumer.send_frame(_reply(frame, answer))


async def handle_presence_query(consumer: QuanziSocketConsumer, frame: dict) -> None:
    raw = frame.get("user_ids")
    if not isinstance(raw, list) or len(raw) > limits.get("PRESENCE_QUERY_MAX_USERS"):
        raise ValidationFailed(f"user_ids is a list of at most {limits.get('PRESENCE_QUERY_MAX_USERS')} ids.",
                               code="INVALID_USER_IDS", field="user_ids")
    ids = [events.decode_user(gid, field="user_ids") for gid in raw]

    def states() -> list[dict]:
        allowed = sorted(selectors.may_see_presence_of(consumer.user.pk, ids))
        online = presence.online_among(allowed)
        out = []
        for uid in allowed:
            seen = presence.last_seen(uid)
            out.append({"user_id": events.user_gid(uid), "online": uid in online,
                        "last_seen": dt.datetime.fromtimestamp(seen, dt.UTC).isoformat() if seen else None})
        return out

    users = await db(states)()
    await consumer.send_frame(_reply(frame, {"type": "presence.state", "users": users}))


async def handle_edit(consumer: QuanziSocketConsumer, frame: dict) -> None:
    message_pk = decode_id(frame.get("message_id"), type_name=events.MESSAGE, field="message_id")
    message = await call_service(services.edit_message, message_id=message_pk, user=consumer.user,
                                 text=frame.get("text"))
    await consumer.send_frame(_reply(frame, {"type": "edit.ok", "message": events.render_message(message)}))


async def handle_recall(consumer: QuanziSocketConsumer, frame: dict) -> None:
    message_pk = decode_id(frame.get("message_id"), type_name=events.MESSAGE, field="message_id")
    message = await call_service(services.recall_message, message_id=message_pk, user=consumer.user)
    await consumer.send_frame(_reply(frame, {"type": "recall.ok", "message": events.render_message(message)}))


def resume_cost(frame: dict) -> int:
    """A resume reads every conversation it names: it pays for them (see SOCKET_FRAME_BUDGET)."""
    wanted = frame.get("conversations")
    named = len(wanted) if isinstance(wanted, dict) else 0
    return math.ceil(named / limits.get("SOCKET_RESUME_CONVERSATIONS_PER_TOKEN"))


QuanziSocketConsumer.frame_costs["resume"] = resume_cost

QuanziSocketConsumer.handlers.update({
    "send": handle_send,
    "read": handle_read,
    "typing": handle_typing,
    "resume": handle_resume,
    "presence.query": handle_presence_query,
    "edit": handle_edit,
    "recall": handle_recall,
})
