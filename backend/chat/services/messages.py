"""Sending, editing and recalling messages and cards."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from django.db import IntegrityError, transaction

from backend.core import clock, message_hooks, presence, ratelimit, reach
from backend.core import text as text_rules
from backend.core.compiled import CompiledQuery
from backend.core.errors import Conflict, NotFound, ValidationFailed
from backend.core.values import is_int
from backend.notifications import selectors as notification_selectors
from backend.notifications import services as notification_services

from .. import events, limits, selectors
from ..models import Conversation, Membership, Message, MessageRevision
from ._base import (
    Kind,
    Muted,
    NotAllowed,
    ReadOnlyConversation,
    Role,
    SendResult,
    _active_members,
    _lock_conversation,
    _seat,
)

# --- messages ----------------------------------------------------------------------------------------


def _clean_client_msg_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > limits.get("CLIENT_MSG_ID_MAX_CHARS") \
            or not value.isprintable():
        raise ValidationFailed(
            f"clientMsgId is required: 1 to {limits.get('CLIENT_MSG_ID_MAX_CHARS')} printable characters.",
            code="INVALID_CLIENT_MSG_ID", field="clientMsgId",
        )
    return value


def _clean_text(text: object, *, required: bool) -> str:
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise ValidationFailed("text must be a string.", code="INVALID_TEXT", field="text")
    problem = text_rules.storage_problem(text)
    if problem:
        raise ValidationFailed(f"The text {problem}.", code="INVALID_TEXT", field="text")
    if len(text) > limits.get("TEXT_MAX_CHARS"):
        raise ValidationFailed(f"A message has at most {limits.get('TEXT_MAX_CHARS')} characters.",
                               code="MESSAGE_TOO_LONG", field="text")
    if required and text_rules.is_blank(text):
        raise ValidationFailed("The message is empty.", code="EMPTY_MESSAGE", field="text")
    return text


# GraphQL's Int is 32-bit: a larger size/width/duration would make every later read of the message fail.
ATTACHMENT_MAX_INT = 2**31 - 1
_ATTACHMENT_FIELDS = {"url": str, "name": str, "size": int, "mime_type": str, "width": int, "height": int,
                      "duration_ms": int}


def _clean_attachment(kind: str, attachment: object) -> dict:
    if not isinstance(attachment, dict):
        raise ValidationFailed("An image or file needs an attachment.", code="INVALID_ATTACHMENT", field="attachment")
    clean: dict[str, Any] = {}
    for key, value in attachment.items():
        expected = _ATTACHMENT_FIELDS.get(key)
        if value is None:
            continue
        if expected is None or not isinstance(value, expected) or isinstance(value, bool):
            raise ValidationFailed(f"Bad attachment field {str(key)[:30]!r}.", code="INVALID_ATTACHMENT",
                                   field=f"attachment.{str(key)[:30]}")
        if expected is int and not 0 <= value <= ATTACHMENT_MAX_INT \
                or expected is str and (len(value) > 1000 or not text_rules.is_storable(value)):
            raise ValidationFailed(f"Bad attachment field {key!r}.", code="INVALID_ATTACHMENT",
                                   field=f"attachment.{key}")
        clean[key] = value
    url = urlparse(clean.get("url", ""))
    if url.scheme != "https" or not url.netloc:
        raise ValidationFailed("Attachments are https URLs.", code="INVALID_ATTACHMENT", field="attachment.url")
    if kind == Message.Kind.FILE and not clean.get("name"):
        raise ValidationFailed("A file needs a name.", code="INVALID_ATTACHMENT", field="attachment.name")
    return clean


def _original(sender_id: int, client_msg_id: str, conversation_id: int) -> Message | None:
    """The message this sender already sent under this client message id, if any (a resend). It runs before
    every send, so it is one plain indexed statement on the unique (sender, client_msg_id) index: building
    the ORM query cost more CPU than the database spent answering it."""
    connection = transaction.get_connection()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, conversation_id FROM {connection.ops.quote_name(Message._meta.db_table)} "
                       "WHERE sender_id = %s AND client_msg_id = %s", [sender_id, client_msg_id])
        row = cursor.fetchone()
    if row is None:
        return None
    if row[1] != conversation_id:
        raise Conflict("This clientMsgId was used for another conversation.", code="CLIENT_MSG_ID_REUSED",
                       field="clientMsgId")
    return Message.objects.select_related("conversation").get(pk=row[0])


def _push_idle_members(conversation: Conversation, message: Message, members: list[tuple[int, bool]],
                       *, sender_name: str, preview: str) -> None:
    """Members with no live socket (on any node) who did not mute the conversation get a notification row."""
    candidates = [uid for uid, muted in members if uid != message.sender_id and not muted]
    if not candidates:
        return
    idle = set(candidates) - presence.online_among(candidates)
    title = conversation.title or sender_name
    payload = {"conversation_id": events.conversation_gid(conversation.pk), "seq": message.seq}
    notification_services.notify_many([
        dict(recipient_id=uid, kind="message", event="chat.message", title=title, body=preview, payload=payload,
             conversation_id=conversation.pk, collapse_key=f"conv-{conversation.pk}")
        for uid in candidates if uid in idle
    ])


def preview_of(message: Message) -> str:
    if message.is_recalled:
        return ""
    data = events.message_data(message)
    if message.kind == Message.Kind.IMAGE:
        return "[Image]"
    if message.kind == Message.Kind.FILE:
        return f"[File] {data.get('attachment', {}).get('name', '')}".strip()
    if message.kind == Message.Kind.CARD:
        return str(data.get("card", {}).get("title") or "[Card]")[: limits.get("PREVIEW_CHARS")]
    return message.body[: limits.get("PREVIEW_CHARS")]


def _send(*, conversation_id: int, sender: Any, client_msg_id: str, kind: str, body: str, data: dict | None,
          card_kind: str = "", reply_to_seq: int | None = None, mentions: Sequence[int] = (),
          check_sender: bool = True, rate_limited: bool = True) -> SendResult:
    """Append one message. Under the conversation row lock it costs, on PostgreSQL, one round trip of two
    statements (see `_append`): lock + seq + INSERT, then the member list. The checks that need the members
    (is the sender still in it? may they post here? whom do they mention?) run after the INSERT and refuse
    by rolling it back, seq included, so seqs stay gapless. A concurrent resend with the same client
    message id is not looked up again under the lock: the unique (sender, client_msg_id) index refuses the
    second INSERT, the transaction rolls back and the original is returned."""
    original = _original(sender.pk, client_msg_id, conversation_id)
    if original is not None:
        _seat(original.conversation, sender.pk)  # a resend after removal learns nothing
        return SendResult(original, created=False)
    if not isinstance(conversation_id, int):
        raise NotFound(field="conversationId")
    if rate_limited:
        ratelimit.hit("chat-send", str(sender.pk), limit=limits.get("SEND_LIMIT"),
                      window_seconds=limits.get("SEND_WINDOW_SECONDS"))
    try:
        with transaction.atomic():
            now = clock.now()
            message = Message(
                conversation_id=conversation_id, sender_id=sender.pk, kind=kind, body=body,
                data=json.dumps(data, ensure_ascii=False, separators=(",", ":")) if data else "",
                client_msg_id=client_msg_id, card_kind=card_kind, reply_to_seq=reply_to_seq, mentions=list(mentions),
                created_at=now,
            )
            conversation, rows = _append(message)
            seq = message.seq
            seat = next((row for row in rows if row[1] == sender.pk), None)
            if seat is None:
                raise NotFound(field="conversationId")  # non-members never learn a conversation exists
            _, _, role, visible_from_seq, _ = seat
            members = [(uid, muted) for _, uid, _, _, muted in rows]
            if check_sender and conversation.kind == Kind.SERVICE and role == Role.MEMBER:
                raise ReadOnlyConversation()
            if conversation.kind == Kind.CIRCLE and conversation.key and not reach.may_send(conversation.key,
                                                                                            sender.pk):
                raise Muted()
            blockers: list[int] = []
            if conversation.kind == Kind.DIRECT:
                # A peer who blocked the sender is neither rung nor pushed (and history hides it from them):
                # the sender's message is accepted as usual, so nothing tells them they are blocked.
                blockers = [uid for uid, _ in members if uid != sender.pk and reach.blocked_since(uid, sender.pk)]
                members = [(uid, muted) for uid, muted in members if uid not in blockers]
            if reply_to_seq is not None and not (visible_from_seq <= reply_to_seq < seq):
                raise ValidationFailed("You can only reply to a message in this conversation.",
                                       code="INVALID_REPLY", field="replyToSeq")
            if mentions and not set(mentions) <= {uid for uid, _ in members}:
                raise ValidationFailed("Only members can be mentioned.", code="INVALID_MENTIONS", field="mentions")
            if blockers:  # a blocker who had read everything stays so: the hidden message is not "unread"
                Membership.objects.filter(conversation_id=conversation_id, user_id__in=blockers,
                                          last_read_seq=seq - 1).update(last_read_seq=seq)
            events.ring_members_on_commit(conversation_id, conversation.kind, (uid for uid, _ in members),
                                          events.new_message_event(message))
            _push_idle_members(conversation, message, members, sender_name=sender.display_name,
                               preview=preview_of(message))
            if kind != Message.Kind.CARD:
                message_hooks.message_posted(message_hooks.PostedMessage(
                    conversation_id=conversation_id, conversation_kind=conversation.kind, message_id=message.pk,
                    seq=seq, sender_id=sender.pk, kind=kind))
            return SendResult(message, created=True)
    except IntegrityError:
        # A concurrent send with the same client message id committed first (into this conversation after
        # waiting for its lock, into another one, or on a database without row locks).
        original = _original(sender.pk, client_msg_id, conversation_id)
        if original is None:
            raise
        return SendResult(original, created=False)


_pg_append: tuple[str, list] | None = None


def _pg_append_statement(connection) -> tuple[str, list]:
    """The locking CTE of `_append` on PostgreSQL (built once per process) and the message fields whose
    values follow its first three parameters (time, conversation id, sender id)."""
    global _pg_append
    if _pg_append is None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [Message._meta.db_table])
            id_sequence = cursor.fetchone()[0]
        q = connection.ops.quote_name
        conv_table, member_table, message_table = (q(m._meta.db_table) for m in (Conversation, Membership, Message))
        fields = [f for f in Message._meta.concrete_fields if f.attname not in ("id", "conversation_id", "seq")]
        sql = (f"WITH c AS (UPDATE {conv_table} SET last_seq = last_seq + 1, last_activity_at = %s, "
               f"last_message_id = nextval('{id_sequence}'::regclass) WHERE id = %s RETURNING *), "
               f"r AS (UPDATE {member_table} m SET last_read_seq = c.last_seq FROM c WHERE m.conversation_id = c.id "
               f"AND m.user_id = %s AND m.left_at IS NULL AND m.last_read_seq < c.last_seq), "
               f"i AS (INSERT INTO {message_table} (id, conversation_id, seq, {', '.join(q(f.column) for f in fields)}) "
               f"SELECT c.last_message_id, c.id, c.last_seq, {', '.join(['%s'] * len(fields))} FROM c) "
               f"SELECT {', '.join('c.' + q(f.column) for f in Conversation._meta.concrete_fields)} FROM c")
        _pg_append = sql, fields
    return _pg_append

# (seat id, user id, role, visible_from_seq, muted) of every active member: the sender's seat and the
# audience in one query, compiled once per process (core.compiled).
_MEMBER_ROWS = CompiledQuery(
    lambda conversation_id, at: Membership.objects.filter(conversation_id=conversation_id, left_at__isnull=True)
    .annotate(is_muted=notification_selectors.conversation_muted_flag(at=at))
    .values_list("id", "user_id", "role", "visible_from_seq", "is_muted"),
    conversation_id=-7_392_001, at=dt.datetime(1970, 1, 2, 3, 4, 5, 678_901, tzinfo=dt.UTC),
)


def _append(message: Message) -> tuple[Conversation, list[tuple[int, int, str, int, bool]]]:
    """Lock the conversation row, take its next seq, store `message` (its id and seq set here) and read the
    active members. Raises NOT_FOUND for an unknown conversation.

    PostgreSQL: one round trip. A data-modifying CTE locks the row and takes the seq (UPDATE … RETURNING,
    instead of SELECT … FOR UPDATE now and an UPDATE at the end), draws the message id from its sequence (so
    `last_message_id` is set in the same UPDATE), INSERTs the message and moves the sender's read marker to
    the new seq (matching nothing when the sender has no active seat: the caller then refuses and rolls
    back). The members are read by a second statement sent in the same query string: in READ COMMITTED
    every statement takes its snapshot when it starts, and this one starts after the lock is granted, so a
    member removed by a transaction that held the lock before us is already gone from it (reading them in
    the locking statement would see the snapshot from before the wait). Other databases: the same steps,
    one statement each."""
    connection = transaction.get_connection()
    now = message.created_at
    if connection.vendor != "postgresql":
        conv_table = connection.ops.quote_name(Conversation._meta.db_table)
        sql = f"UPDATE {conv_table} SET last_seq = last_seq + 1, last_activity_at = %s WHERE id = %s RETURNING *"
        found = list(Conversation.objects.raw(sql, [connection.ops.adapt_datetimefield_value(now),
                                                    message.conversation_id]))
        if not found:
            raise NotFound(field="conversationId")
        conversation = found[0]
        message.seq = conversation.last_seq
        message.save(force_insert=True)
        conversation.last_message = message
        Conversation.objects.filter(pk=conversation.pk).update(last_message=message)
        Membership.objects.filter(conversation_id=conversation.pk, user_id=message.sender_id, left_at__isnull=True,
                                  last_read_seq__lt=message.seq).update(last_read_seq=message.seq)
        return conversation, _MEMBER_ROWS.rows(connection, conversation_id=conversation.pk, at=now)
    statement, fields = _pg_append_statement(connection)
    members_sql, members_params = _MEMBER_ROWS.sql(connection, conversation_id=message.conversation_id, at=now)
    sql = f"{statement}; {members_sql}"
    params = [now, message.conversation_id, message.sender_id,
              *(f.get_db_prep_save(getattr(message, f.attname), connection) for f in fields), *members_params]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
        cursor.nextset()
        rows = _MEMBER_ROWS.convert(connection, cursor.fetchall())
    if row is None:
        raise NotFound(field="conversationId")
    conversation = Conversation.from_db(connection.alias, [f.attname for f in Conversation._meta.concrete_fields],
                                        list(row))
    message.id, message.seq = conversation.last_message_id, conversation.last_seq
    message._state.adding, message._state.db = False, connection.alias
    conversation.last_message = message
    return conversation, rows


def send_message(
    *,
    conversation_id: int,
    sender: Any,
    client_msg_id: object,
    text: object = "",
    attachment: object = None,
    kind: object = Message.Kind.TEXT,
    reply_to_seq: object = None,
    mention_ids: object = (),
) -> SendResult:
    """Send text, an image or a file (by URL). Resending with the same client message id returns the
    original instead of a second message."""
    client_msg_id = _clean_client_msg_id(client_msg_id)
    if kind not in (Message.Kind.TEXT, Message.Kind.IMAGE, Message.Kind.FILE):
        raise ValidationFailed("Clients send text, image or file messages.", code="INVALID_KIND", field="kind")
    data = None
    if kind == Message.Kind.TEXT:
        text = _clean_text(text, required=True)
        if attachment is not None:
            raise ValidationFailed("A text message has no attachment.", code="INVALID_ATTACHMENT", field="attachment")
    else:
        text = _clean_text(text, required=False)  # an optional caption
        data = {"attachment": _clean_attachment(kind, attachment)}
    # Checked against the conversation under its lock; the range first, because the message is stored
    # before that check (and rolled back when it fails): a column holds at most a 64-bit integer.
    if reply_to_seq is not None and not (is_int(reply_to_seq, minimum=0) and reply_to_seq < 2**63):
        raise ValidationFailed("You can only reply to a message in this conversation.", code="INVALID_REPLY",
                               field="replyToSeq")
    if not isinstance(mention_ids, list | tuple) or len(mention_ids) > limits.get("MENTIONS_MAX") or not all(
            is_int(m) for m in mention_ids):
        raise ValidationFailed("mentions must be a short list of member ids.", code="INVALID_MENTIONS",
                               field="mentions")
    return _send(conversation_id=conversation_id, sender=sender, client_msg_id=client_msg_id, kind=kind,
                 body=text, data=data, reply_to_seq=reply_to_seq, mentions=list(dict.fromkeys(mention_ids)))


def _check_card(card: object) -> None:
    if not isinstance(card, dict) or not isinstance(card.get("kind"), str) or not card["kind"]:
        raise ValidationFailed("A card is an object with a string kind.", code="INVALID_CARD", field="card")
    try:
        encoded = json.dumps(card, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ValidationFailed("A card must be JSON.", code="INVALID_CARD", field="card") from exc
    if len(encoded.encode()) > limits.get("CARD_MAX_BYTES") or len(card["kind"]) > 40:
        raise ValidationFailed("The card is too large.", code="INVALID_CARD", field="card")


def post_card(*, conversation_id: int, sender: Any, client_msg_id: str, card: dict) -> SendResult:
    """Server-side only (payments, loans, advisors…): a structured card with a `kind` and the ids a client
    needs (e.g. {"kind": "transfer", "owner": "payments", "transfer_id": "…", "title": "…", "state": {…}}).
    Clients cannot post, edit or recall cards; the app named in `owner` changes the state with
    `cards.update_card`. Service accounts post their notices here too."""
    client_msg_id = _clean_client_msg_id(client_msg_id)
    _check_card(card)
    return _send(conversation_id=conversation_id, sender=sender, client_msg_id=client_msg_id,
                 kind=Message.Kind.CARD, body="", data={"card": card}, card_kind=card["kind"], check_sender=False)


def post_service_notice(*, conversation_id: int, sender: Any, client_msg_id: str, text: str = "",
                        card: dict | None = None) -> SendResult:
    """Server-side only (advisors' service accounts and broadcasts): a notice (text, or a card when `card` is
    given) from a service account. Not counted against the per-sender send limit, which is there to stop a
    person flooding a chat, not the bank's own sender writing to each of its subscribers; idempotent by
    `client_msg_id` like every send."""
    if card is not None:
        client_msg_id = _clean_client_msg_id(client_msg_id)
        _check_card(card)
        return _send(conversation_id=conversation_id, sender=sender, client_msg_id=client_msg_id,
                     kind=Message.Kind.CARD, body=_clean_text(text, required=False), data={"card": card},
                     card_kind=card["kind"], check_sender=False, rate_limited=False)
    return _send(conversation_id=conversation_id, sender=sender, client_msg_id=_clean_client_msg_id(client_msg_id),
                 kind=Message.Kind.TEXT, body=_clean_text(text, required=True), data=None, rate_limited=False)


def _own_message_locked(message_id: object, user: Any) -> tuple[Message, Conversation]:
    """Lock the conversation, then the caller's view of the message. Others' messages: NOT_ALLOWED; messages
    in conversations the caller is not in (or before they joined): NOT_FOUND."""
    if not isinstance(message_id, int):
        raise NotFound(field="messageId")
    conversation_id = Message.objects.filter(pk=message_id).values_list("conversation_id", flat=True).first()
    if conversation_id is None:
        raise NotFound(field="messageId")
    conversation = _lock_conversation(conversation_id)
    message = selectors.visible_messages_of(user.pk).filter(pk=message_id, conversation=conversation).first()
    if message is None:
        raise NotFound(field="messageId")
    if message.sender_id != user.pk or message.kind == Message.Kind.SYSTEM:
        raise NotAllowed("Only the sender can change a message.", field="messageId")
    if message.is_recalled:
        raise Conflict("The message was recalled.", code="MESSAGE_RECALLED", field="messageId")
    return message, conversation


def _announce_change(conversation: Conversation, message: Message) -> None:
    """Number the change (resume replays changes after the client's `change`) and ring the members."""
    conversation.last_change += 1
    conversation.save(update_fields=["last_change"])
    message.change_no = conversation.last_change
    frame = events.change_frame(message)
    events.ring_members_on_commit(conversation.pk, conversation.kind, (uid for uid, _ in _active_members(conversation)),
                                  events.relay_event(conversation.pk, frame))


def edit_message(*, message_id: int, user: Any, text: object) -> Message:
    """The sender may correct a text message within EDIT_SECONDS; earlier versions are kept. Never a card."""
    text = _clean_text(text, required=True)
    with transaction.atomic():
        message, conversation = _own_message_locked(message_id, user)
        if message.kind == Message.Kind.CARD:
            raise Conflict("Cards cannot be edited.", code="CARD_NOT_EDITABLE", field="messageId")
        if message.kind != Message.Kind.TEXT:
            raise Conflict("Only text can be edited.", code="NOT_EDITABLE", field="messageId")
        if clock.now() - message.created_at > dt.timedelta(seconds=limits.get("EDIT_SECONDS")):
            raise Conflict("Messages can only be edited shortly after sending.", code="EDIT_WINDOW_PASSED",
                           field="messageId")
        if text == message.body:
            return message
        MessageRevision.objects.create(message=message, body=message.body)
        message.body, message.edited_at = text, clock.now()
        _announce_change(conversation, message)
        message.save(update_fields=["body", "edited_at", "change_no"])
    return message


def recall_message(*, message_id: int, user: Any) -> Message:
    """The sender takes a message back within RECALL_SECONDS. A tombstone stays (its seq is kept); the
    body, attachment, edit history and notification previews are erased."""
    with transaction.atomic():
        message, conversation = _own_message_locked(message_id, user)
        if message.kind == Message.Kind.CARD:
            raise Conflict("Cards cannot be recalled.", code="CARD_NOT_RECALLABLE", field="messageId")
        if clock.now() - message.created_at > dt.timedelta(seconds=limits.get("RECALL_SECONDS")):
            raise Conflict("Messages can only be recalled shortly after sending.", code="RECALL_WINDOW_PASSED",
                           field="messageId")
        message.body, message.data, message.recalled_at = "", "", clock.now()
        message.revisions.all().delete()
        _scrub_notification_previews(conversation.pk, message.seq)
        _announce_change(conversation, message)
        message.save(update_fields=["body", "data", "recalled_at", "change_no"])
    return message


def _scrub_notification_previews(conversation_id: int, seq: int) -> None:
    """A recalled message leaves no text in anyone's inbox and never goes out as a push."""
    notification_services.retract(conversation_id=conversation_id, event="chat.message", payload_match={"seq": seq})
