"""Reads of the chat app, always scoped to what the asking user may see.

A user sees a conversation only through an active membership, and only the messages from the one that
announced them (`visible_from_seq`) on. Everything else looks exactly like "does not exist".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, F, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from backend.core import clock, reach
from backend.core.compiled import CompiledQuery
from backend.notifications import selectors as notification_selectors

from . import events, limits
from .models import Conversation, Membership, Message

SMALL_KINDS = (Conversation.Kind.DIRECT, Conversation.Kind.ADVISOR, Conversation.Kind.SERVICE)


def _with_mute(seats: QuerySet[Membership]) -> QuerySet[Membership]:
    """`is_muted` on each seat, read from the one record of mutes (notifications) in the same query."""
    return seats.annotate(is_muted=notification_selectors.conversation_muted_flag())


def seat_of(user_id: int, conversation_id: int) -> Membership | None:
    """The user's active seat (with its conversation and `is_muted`), or None."""
    return active_seats_of(user_id).filter(conversation_id=conversation_id).first()


def active_seats_of(user_id: int) -> QuerySet[Membership]:
    """The user's active seats with their conversations: a Conversation id is resolved through these."""
    return _with_mute(Membership.objects.select_related("conversation").filter(user_id=user_id, left_at__isnull=True))


def visible_messages_of(user_id: int) -> QuerySet[Message]:
    """Every message the user may read: in a conversation they are in, from the seq their seat starts at."""
    return Message.objects.filter(
        conversation__memberships__user_id=user_id, conversation__memberships__left_at__isnull=True,
        seq__gte=F("conversation__memberships__visible_from_seq"),
    )


def my_conversations(user_id: int) -> QuerySet[Membership]:
    """My seats, most recent activity first, with everything a conversation list shows in a fixed number of
    queries: the conversation, its last message and sender, whether I muted it, and the other party of small
    conversations."""
    peers = Prefetch(
        "conversation__memberships",
        queryset=Membership.objects.filter(conversation__kind__in=SMALL_KINDS, left_at__isnull=True)
        .exclude(user_id=user_id).select_related("user"),
        to_attr="peer_seats",
    )
    return _with_mute(
        Membership.objects.filter(user_id=user_id, left_at__isnull=True)
        .select_related("conversation", "conversation__last_message", "conversation__last_message__sender")
        .prefetch_related(peers)
        .order_by("-conversation__last_activity_at", "-conversation_id")
    )


def page_of_conversations(user_id: int, *, first: int, after: tuple[dt.datetime, int] | None) -> list[Membership]:
    """Keyset page (activity, id) so a conversation moving to the top never duplicates or skips a row."""
    rows = my_conversations(user_id)
    if after is not None:
        at, pk = after
        rows = rows.filter(Q(conversation__last_activity_at__lt=at)
                           | Q(conversation__last_activity_at=at, conversation_id__lt=pk))
    return list(rows[:first])


def peer_of(seat: Membership):
    """The other party of a direct, advisor or service conversation (None for groups and circles)."""
    if seat.conversation.kind not in SMALL_KINDS:
        return None
    seats = getattr(seat.conversation, "peer_seats", None)
    if seats is None:  # a single conversation, not a prefetched list
        seats = [s for s in members_of(seat) if s.user_id != seat.user_id]
    return seats[0].user if seats else None


def title_of(seat: Membership) -> str:
    """The group title, or the other party's name (advisor conversations always show the manager's)."""
    conversation = seat.conversation
    if conversation.title and conversation.kind != Conversation.Kind.ADVISOR:
        return conversation.title
    peer = peer_of(seat)
    return peer.display_name if peer else conversation.title


def unread_count(seat: Membership) -> int:
    conversation = seat.conversation
    return max(0, conversation.last_seq - max(seat.last_read_seq, seat.visible_from_seq - 1))


def _seat_messages(conversation_id: int, visible_from: int) -> QuerySet[Message]:
    return Message.objects.filter(conversation_id=conversation_id, seq__gte=visible_from)


def _blocked_peer(seat: Membership) -> tuple[int, dt.datetime] | None:
    """In a direct conversation whose peer I blocked: (the peer, since when)."""
    conversation = seat.conversation
    if conversation.kind == Conversation.Kind.DIRECT and conversation.key:
        # "direct:<lo>:<hi>": what the peer sent after I blocked them was never delivered to me (core.reach)
        lo, hi = (int(part) for part in conversation.key.split(":")[1:])
        peer = hi if lo == seat.user_id else lo
        since = reach.blocked_since(seat.user_id, peer)
        if since is not None:
            return peer, since
    return None


def visible_messages(seat: Membership) -> QuerySet[Message]:
    rows = _seat_messages(seat.conversation_id, seat.visible_from_seq)
    blocked = _blocked_peer(seat)
    if blocked is not None:
        peer, since = blocked
        rows = rows.exclude(sender_id=peer, created_at__gte=since)
    return rows


def history(seat: Membership, *, after_seq: int | None = None, before_seq: int | None = None,
            limit: int = 50, newest_first_window: bool = True) -> tuple[list[Message], bool]:
    """One page of history in ascending seq order, and whether more exist beyond it.

    With `after_seq`: the `limit` messages after it (reading forward). Otherwise the `limit` messages before
    `before_seq` (or the newest ones), i.e. scrolling back."""
    rows = visible_messages(seat).select_related("sender")
    if after_seq is not None:
        rows = rows.filter(seq__gt=after_seq)
        if before_seq is not None:
            rows = rows.filter(seq__lt=before_seq)
        page = list(rows.order_by("seq")[: limit + 1])
        return page[:limit], len(page) > limit
    if before_seq is not None:
        rows = rows.filter(seq__lt=before_seq)
    page = list(rows.order_by("-seq")[: limit + 1])
    more = len(page) > limit
    return list(reversed(page[:limit])), more


def messages_after(user_id: int, conversation_id: int, after_seq: int, upto_seq: int | None = None) -> list[Message]:
    """What a socket missed: messages after `after_seq` (up to `upto_seq`), in order, if still a member."""
    seat = seat_of(user_id, conversation_id)
    if seat is None:
        return []
    rows = visible_messages(seat).filter(seq__gt=after_seq).order_by("seq")
    if upto_seq is not None:
        rows = rows.filter(seq__lte=upto_seq)
    return list(rows[: limits.get("RESUME_MAX_GAP") + 1])


def seq_heads(user_id: int) -> dict[int, tuple[int, int]]:
    """For each conversation I am in: (newest seq, first seq I may see)."""
    return {
        conv: (last_seq, visible_from)
        for conv, last_seq, visible_from in Membership.objects.filter(user_id=user_id, left_at__isnull=True)
        .values_list("conversation_id", "conversation__last_seq", "visible_from_seq")
    }


# Asked on every socket's connect and on every heartbeat (every 25 s per socket): compiled once per process.
_SOCKET_HEADS = CompiledQuery(
    lambda user_id: Membership.objects.filter(user_id=user_id, left_at__isnull=True)
    .values_list("conversation_id", "conversation__last_seq", "visible_from_seq", "conversation__kind"),
    user_id=-7_392_031,
)


def socket_heads(user_id: int) -> dict[int, tuple[int, int, bool]]:
    """For each conversation I am in: (newest seq, first seq I may see, rung through its conversation group)."""
    return {
        conv: (last_seq, visible_from, events.uses_conversation_group(kind))
        for conv, last_seq, visible_from, kind in _SOCKET_HEADS.rows(connection, user_id=user_id)
    }


@dataclass
class ResumePlan:
    """What to replay for each conversation the client named."""

    replay: dict[int, list[Message]] = field(default_factory=dict)
    resync: dict[int, int] = field(default_factory=dict)  # conversation → its last seq
    changed: dict[int, list[Message]] = field(default_factory=dict)  # edits/recalls since `change`, one page
    # conversation → (last seq, the change counter the client holds after this replay: the newest change,
    # or the last one of the page when `more_changes` names the conversation)
    heads: dict[int, tuple[int, int]] = field(default_factory=dict)
    more_changes: set[int] = field(default_factory=set)  # more edits/recalls than one page: resume again
    not_found: list[int] = field(default_factory=list)
    # Conversations the client did not name that the user joined since `added_after` (seats with everything
    # their summary shows), replayed from the first message the user may see. `added_cursor` is the next
    # `added_after`; `added_more` says one resume did not announce them all.
    added: list[Membership] = field(default_factory=list)
    added_cursor: dt.datetime | None = None
    added_more: bool = False


def _added_seats(plan: ResumePlan, user_id: int, known: list[int], since: dt.datetime) -> None:
    """Seats joined after `since` (less a grace for transactions that committed after a timestamp they took
    earlier, and for clock skew between nodes) in conversations the client did not name. Re-announcing one is
    harmless — the client knows it by id — missing one is not."""
    grace = dt.timedelta(seconds=limits.get("RESUME_ADDED_GRACE_SECONDS"))
    most = limits.get("RESUME_MAX_ADDED")
    rows = list(my_conversations(user_id).filter(joined_at__gt=since - grace).exclude(conversation_id__in=known)
                .order_by("joined_at", "id")[: most + 1])
    plan.added = rows[:most]
    if len(rows) > most:
        plan.added_more, plan.added_cursor = True, plan.added[-1].joined_at


# A reconnect storm plans thousands of resumes a second, and building these two querysets cost four times
# their queries' CPU: compiled once per process (core.compiled). The seats' IN list is compiled per power-of-two
# length (at most 10 variants up to RESUME_MAX_CONVERSATIONS), padded by repeating the last id.
_NAMED_SEATS: dict[int, CompiledQuery] = {}


def _named_seats_query(user_id: int, **conversations: int) -> QuerySet[Membership]:
    return Membership.objects.select_related("conversation").filter(
        user_id=user_id, left_at__isnull=True, conversation_id__in=list(conversations.values()))


def _named_seats(user_id: int, conversation_ids: list[int]) -> list[Membership]:
    """The user's active seats (with their conversations) among these conversations."""
    if not conversation_ids:
        return []
    arity = 1 << (len(conversation_ids) - 1).bit_length()
    compiled = _NAMED_SEATS.get(arity)
    if compiled is None:
        compiled = _NAMED_SEATS.setdefault(arity, CompiledQuery(
            _named_seats_query, user_id=-7_392_051, **{f"c{k}": 1_999_300_000 + k for k in range(arity)}))
    padded = conversation_ids + conversation_ids[-1:] * (arity - len(conversation_ids))
    return compiled.objects(connection, user_id=user_id, **{f"c{k}": pk for k, pk in enumerate(padded)})


_MESSAGES_AFTER = CompiledQuery(
    lambda conversation_id, visible_from, after: _seat_messages(conversation_id, visible_from)
    .filter(seq__gt=after).order_by("seq"),
    conversation_id=1_999_392_061, visible_from=1_999_392_062, after=1_999_392_063,
)


def _messages_after(seat: Membership, after: int) -> list[Message]:
    """`visible_messages(seat)` after a seq, in order; compiled unless a block narrows them (a direct chat)."""
    if _blocked_peer(seat) is not None:
        return list(visible_messages(seat).filter(seq__gt=after).order_by("seq"))
    return _MESSAGES_AFTER.objects(connection, conversation_id=seat.conversation_id,
                                   visible_from=seat.visible_from_seq, after=after)


def resume_plan(user_id: int, wanted: dict[int, tuple[int, int | None]], *,
                added_after: dt.datetime | None = None) -> ResumePlan:
    """`wanted` maps conversation → (last seq the client has, last change it has or None). With `added_after`
    (the cursor of the client's last resume), conversations joined since then that `wanted` leaves out are
    planned too, from their first visible message."""
    plan = ResumePlan(added_cursor=clock.now())  # taken before reading: a later join is after the cursor
    if added_after is not None:
        _added_seats(plan, user_id, list(wanted), added_after)
        wanted = {**wanted, **{seat.conversation_id: (0, None) for seat in plan.added}}
    seats = {s.conversation_id: s for s in _named_seats(user_id, list(wanted))}
    max_gap, per_page = limits.get("RESUME_MAX_GAP"), limits.get("RESUME_CHANGES_PAGE")
    for conversation_id, (have_seq, have_change) in wanted.items():
        seat = seats.get(conversation_id)
        if seat is None:
            plan.not_found.append(conversation_id)
            continue
        conversation = seat.conversation
        plan.heads[conversation_id] = (conversation.last_seq, conversation.last_change)
        start = max(have_seq, seat.visible_from_seq - 1)
        if conversation.last_seq - start > max_gap:
            plan.resync[conversation_id] = conversation.last_seq
            continue
        if conversation.last_seq > start:
            plan.replay[conversation_id] = _messages_after(seat, start)
        if have_change is not None and conversation.last_change > have_change:
            page = list(visible_messages(seat).filter(change_no__gt=have_change, seq__lte=start)
                        .order_by("change_no")[: per_page + 1])
            plan.changed[conversation_id] = page[:per_page]
            if len(page) > per_page:  # one page per resume: the client asks again from the last change it got
                plan.heads[conversation_id] = (conversation.last_seq, page[per_page - 1].change_no)
                plan.more_changes.add(conversation_id)
    return plan


def members_of(seat: Membership) -> QuerySet[Membership]:
    return (Membership.objects.filter(conversation_id=seat.conversation_id, left_at__isnull=True)
            .select_related("user").order_by("id"))


def _co_members(user_id: int, max_members: int | None = None) -> QuerySet:
    """Everyone sharing an active conversation with the user (optionally only conversations this small)."""
    mine = Membership.objects.filter(user_id=user_id, left_at__isnull=True)
    if max_members is not None:
        mine = mine.filter(conversation__member_count__lte=max_members)
    return (Membership.objects.filter(conversation_id__in=mine.values("conversation_id"), left_at__isnull=True)
            .exclude(user_id=user_id).values_list("user_id", flat=True).distinct())


# Asked on every socket's connect and close (a reconnect storm asks it thousands of times a second):
# compiled once per process (core.compiled).
_PRESENCE_AUDIENCE = CompiledQuery(_co_members, user_id=-7_392_021, max_members=1_999_392_022)  # in the column's range


def presence_audience(user_id: int) -> set[int]:
    """Who is told when this user comes online or goes offline: co-members in conversations of at most
    PRESENCE_PUSH_MAX_MEMBERS."""
    rows = _PRESENCE_AUDIENCE.rows(connection, user_id=user_id, max_members=limits.get("PRESENCE_PUSH_MAX_MEMBERS"))
    return {uid for (uid,) in rows}


def may_see_presence_of(viewer_id: int, user_ids: list[int]) -> set[int]:
    """Presence is visible to co-members only (there are no friends yet)."""
    mine = Membership.objects.filter(user_id=viewer_id, left_at__isnull=True).values("conversation_id")
    return set(
        Membership.objects.filter(conversation_id__in=mine, user_id__in=user_ids, left_at__isnull=True)
        .values_list("user_id", flat=True).distinct()
    )


@dataclass
class CatchUp:
    member: bool
    head: int = 0
    messages: list[Message] = field(default_factory=list)
    too_far: bool = False


def catch_up(user_id: int, conversation_id: int, after_seq: int, upto_seq: int | None = None) -> CatchUp:
    """For a socket that noticed a gap: the messages it missed, or "too far" (the client must resync)."""
    seat = seat_of(user_id, conversation_id)
    if seat is None:
        return CatchUp(member=False)
    head = seat.conversation.last_seq
    upto = head if upto_seq is None else min(upto_seq, head)
    start = max(after_seq, seat.visible_from_seq - 1)
    if upto - start > limits.get("RESUME_MAX_GAP"):
        return CatchUp(member=True, head=head, too_far=True)
    rows = list(visible_messages(seat).filter(seq__gt=start, seq__lte=upto).order_by("seq"))
    return CatchUp(member=True, head=upto, messages=rows)


# --- advisor conversations (read by the advisors app) ----------------------------------------------------


def advisor_seats_of(manager_id: int) -> QuerySet[Membership]:
    """A client manager's active seats in advisor conversations, with the conversation, its last message and
    `customer_last_at` / `manager_last_at` (when each side last wrote; system messages and auto-replies have no
    sender and count for neither) and `waiting_since` (the customer's first message after the manager's last
    reply, None when nothing waits). One query for any number of conversations."""
    messages = Message.objects.filter(conversation_id=OuterRef("conversation_id"), sender__isnull=False) \
        .exclude(kind=Message.Kind.SYSTEM)
    mine = messages.filter(sender_id=manager_id)
    theirs = messages.exclude(sender_id=manager_id)
    return (
        Membership.objects.filter(user_id=manager_id, left_at__isnull=True, conversation__kind=Conversation.Kind.ADVISOR)
        .select_related("conversation", "conversation__last_message")
        .annotate(
            manager_last_seq=Coalesce(Subquery(mine.order_by("-seq").values("seq")[:1]), Value(0)),
            manager_last_at=Subquery(mine.order_by("-seq").values("created_at")[:1]),
            customer_last_at=Subquery(theirs.order_by("-seq").values("created_at")[:1]),
        )
        .annotate(waiting_since=Subquery(theirs.filter(seq__gt=OuterRef("manager_last_seq"))
                                         .order_by("seq").values("created_at")[:1]))
    )


def waiting_advisor_seats(manager_id: int) -> QuerySet[Membership]:
    """The manager's queue: advisor conversations whose customer wrote after the manager's last reply, the
    longest-waiting first."""
    return advisor_seats_of(manager_id).filter(waiting_since__isnull=False).order_by("waiting_since", "id")


def has_read_flag(*, conversation_ref: Any, user_ref: Any, seq_ref: Any) -> Exists:
    """An expression: has the user read the conversation up to `seq` (refs are OuterRef/F expressions)?"""
    return Exists(Membership.objects.filter(conversation_id=conversation_ref, user_id=user_ref,
                                            last_read_seq__gte=seq_ref))


def messages_sent_since(user_ids: list[int], since: dt.datetime) -> dict[int, int]:
    """How many messages (not system notices) each user sent since `since`: an activity measure."""
    rows = (Message.objects.filter(sender_id__in=user_ids, created_at__gte=since).exclude(kind=Message.Kind.SYSTEM)
            .values("sender_id").annotate(n=Count("id")).values_list("sender_id", "n"))
    return dict(rows)


def active_member_ids(conversation_id: int) -> list[int]:
    """Who is in a conversation now (e.g. a circle conversation's members, for a broadcast to a circle)."""
    return list(Membership.objects.filter(conversation_id=conversation_id, left_at__isnull=True)
                .values_list("user_id", flat=True))


def is_circle_conversation(conversation_id: int) -> bool:
    return Conversation.objects.filter(pk=conversation_id, kind=Conversation.Kind.CIRCLE).exists()
