"""Anonymity sweep for loans, wider than tests/loans' field walk: for a live anonymous loan before default, every
GraphQL answer about loans (for every viewer other than the borrower: a lender, a co-member who did not lend, a
stranger, a non-admin staff member), every socket event sent to anyone but the borrower, every push sent to
anyone but the borrower, and every log line (all loggers at DEBUG) during the loan's life carries none of the
borrower's identifiers: user id, raw pk next to a user word, name, phone, avatar URL. Two loans of the same
borrower share no pseudonym. After default the reveal reaches the lenders (and only them).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re

import pytest
from channels.layers import InMemoryChannelLayer

from backend.accounts.ids import user_gid
from backend.accounts.models import Device
from backend.chat import events as chat_events
from backend.chat.models import Message
from backend.core.ids import decode_id, encode_id
from backend.core.realtime import user_group
from backend.loans import services
from backend.loans.models import Loan, Pledge
from backend.notifications import push
from backend.notifications import services as notifications
from backend.notifications.models import Notification
from backend.schema import schema
from tests.chat.conftest import token_for
from tests.core.test_mutation_payloads import lit, selection
from tests.loans.conftest import YUAN, circle_with, fund, new_user

pytestmark = pytest.mark.django_db

LOAN_NODE_TYPES = ("LoanRequest", "MyLoan", "LoanPledge")


def secrets_of(user) -> dict[str, str | re.Pattern]:
    return {"name": user.display_name, "phone": user.phone, "phone digits": user.phone[-8:],
            "avatar": user.avatar_url, "user id": user_gid(user.pk),
            "raw pk": re.compile(rf"(?i)\b(?:user|borrower|recipient|sender)(?:_?id)?[\s=:#.]+{user.pk}\b")}


def leaks(text: str, user) -> list[str]:
    return [what for what, secret in secrets_of(user).items()
            if (secret.search(text) if isinstance(secret, re.Pattern) else secret in text)]


class Recorder:
    """Every socket event (group and direct sends on the channel layer) and every push, with its recipient."""

    def __init__(self, monkeypatch):
        self.events: list[tuple[str, dict]] = []
        self.pushes: list[tuple[int, push.PushContent]] = []
        original_group_send, original_send = InMemoryChannelLayer.group_send, InMemoryChannelLayer.send
        recorder = self

        async def group_send(layer, group, message):
            recorder.events.append((group, message))
            return await original_group_send(layer, group, message)

        async def send(layer, channel, message):
            recorder.events.append((channel, message))
            return await original_send(layer, channel, message)

        monkeypatch.setattr(InMemoryChannelLayer, "group_send", group_send)
        monkeypatch.setattr(InMemoryChannelLayer, "send", send)

        class RecordingBackend(push.LoggingPushBackend):
            def send(self, content, targets):
                owner = Notification.objects.get(pk=decode_id(content.data["notification_id"],
                                                              type_name="Notification")).recipient_id
                recorder.pushes.append((owner, content))
                return super().send(content, targets)

        monkeypatch.setattr(push, "get_backend", lambda: RecordingBackend())


@pytest.fixture
def recorder(monkeypatch):
    return Recorder(monkeypatch)


@pytest.fixture
def every_log_line(caplog):
    for name in [None, *logging.root.manager.loggerDict]:
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def push_everything() -> None:
    """Deliver every notification now (as the push task would), so each push's payload is recorded."""
    for pk in Notification.objects.order_by("pk").values_list("pk", flat=True):
        notifications.deliver_push(notification_id=pk)


def root_query(name: str, arguments: str = "", depth: int = 4) -> str:
    field = schema.graphql_schema.query_type.fields[name]
    return f"query {{ {name}{f'({arguments})' if arguments else ''} {selection(field.type, depth)} }}"


def node_query(gid: str) -> str:
    fragments = " ".join(f"... on {t} {selection(schema.graphql_schema.get_type(t), 3)}" for t in LOAN_NODE_TYPES)
    return f"query {{ node(id: {lit(gid)}) {{ __typename {fragments} }} }}"


def what_a_viewer_sees(gql, token: str, loans: list[Loan], pledge: Pledge, conversation_id: int) -> list[dict]:
    """Every query that answers about loans, with every field (and the errors the mutations give)."""
    ids = [encode_id(t, loan.pk) for loan in loans for t in ("LoanRequest", "MyLoan")] + [
        encode_id("LoanPledge", pledge.pk)]
    documents = [root_query("loanRequest", f"id: {lit(encode_id('LoanRequest', loan.pk))}") for loan in loans]
    documents += [node_query(gid) for gid in ids]
    documents += [f"query {{ nodes(ids: {json.dumps(ids)}) {{ id __typename }} }}"]
    documents += [root_query(name) for name in ("loanRequestsForMe", "myPledges", "myLendingPortfolio", "myLoans")]
    documents += [root_query("notifications", depth=3), root_query("myWallet", depth=3)]
    documents += [f"query {{ messages(conversationId: {lit(encode_id('Conversation', conversation_id))}, last: 50) "
                  f"{selection(schema.graphql_schema.get_type('MessageConnection'), 4)} }}"]
    for loan in loans:  # what the mutations say when a viewer tries them on someone else's loan
        documents += [
            f"mutation {{ pledgeToLoan(loanId: {lit(encode_id('LoanRequest', loan.pk))}, amount: 1, "
            f'idempotencyKey: "sweep-odd") {{ errors {{ field code message }} }} }}',
            f"mutation {{ cancelLoanRequest(loanId: {lit(encode_id('MyLoan', loan.pk))}) "
            "{ errors { field code message } } }",
            f"mutation {{ repayLoan(loanId: {lit(encode_id('MyLoan', loan.pk))}, amount: 100, "
            f'idempotencyKey: "sweep-repay") {{ errors {{ field code message }} }} }}']
    return [gql(document, token=token) for document in documents]


@pytest.fixture
def life(db):
    borrower = new_user("张秘密")
    borrower.avatar_url = "https://cdn.example.com/avatar-zhang.png"
    borrower.save()
    ada, bob, cyd, eve = (new_user(name) for name in ("出借甲", "出借乙", "同圈丙", "外人丁"))
    staff = new_user("柜员戊")
    staff.is_staff = True  # staff, not an admin
    staff.save()
    for lender in (ada, bob):
        fund(lender, 10_000 * YUAN)
    circle = circle_with(borrower, ada, bob, cyd)
    viewers = {"lender": ada, "other lender": bob, "co-member": cyd, "stranger": eve, "staff": staff}
    for user in viewers.values():  # every viewer has a phone that takes pushes, previews on: the most a push says
        token_for(user)
        Device.objects.filter(user=user).update(fcm_token=f"fcm-{user.pk}")
        notifications.update_preferences(user_id=user.pk, show_previews=True)
    return borrower, viewers, circle


def test_nothing_a_loan_touches_names_its_borrower_before_default(gql, life, recorder, every_log_line,
                                                                  django_capture_on_commit_callbacks):
    borrower, viewers, circle = life
    ada, bob = viewers["lender"], viewers["other lender"]
    with django_capture_on_commit_callbacks(execute=True):
        loans = [services.create_loan_request(borrower=borrower, amount=100_000 * (n + 1), term_months=2,
                                              rate_bp=800, method="equal_instalment", purpose="周转",
                                              circle_ids=[circle.pk], funding_days=3) for n in range(2)]
        pledge = services.pledge(lender=ada, loan_id=loans[0].pk, amount=50_000, idempotency_key="ada-pledge-a")
        services.pledge(lender=bob, loan_id=loans[0].pk, amount=50_000, idempotency_key="bob-pledge-a")
        services.pledge(lender=ada, loan_id=loans[1].pk, amount=100_000, idempotency_key="ada-pledge-b")
        loans[0].refresh_from_db()
        due = loans[0].instalments.get(number=1).due_date
        services.scan_loans(today=due - dt.timedelta(days=3))  # the reminder
        services.scan_loans(today=due + dt.timedelta(days=10))  # overdue, penalty: not yet default
    push_everything()
    assert Loan.objects.get(pk=loans[0].pk).status == Loan.Status.ACTIVE

    seen = {who: what_a_viewer_sees(gql, token_for(user), loans, pledge, circle.conversation_id)
            for who, user in viewers.items()}
    problems = {who: found for who, answers in seen.items()
                if (found := leaks(json.dumps(answers, ensure_ascii=False, default=str), borrower))}
    assert problems == {}
    assert all("INTERNAL_ERROR" not in json.dumps(a) for a in seen.values())
    # the walk saw the loans: the lender reads both, by two pseudonyms that do not link them
    lender_view = [a["data"]["loanRequest"] for a in seen["lender"][:2]]
    assert [r["borrower"] for r in lender_view] == [None, None]
    assert lender_view[0]["pseudonym"] != lender_view[1]["pseudonym"]
    assert [a["data"]["loanRequest"] for a in seen["stranger"][:2]] == [None, None]

    mine = user_group(borrower.pk)
    # chat doorbells carry their frame encoded once (`text`): decode it, so names are searched as characters
    events = [(group, {**message, "frame": json.loads(message["text"])} if "text" in message else message)
              for group, message in recorder.events if group != mine]
    kinds = {message.get("frame", {}).get("type") or message.get("type") for _, message in events}
    assert {"message", "card.updated", "notification"} <= kinds, kinds  # cards posted, updated; inbox frames
    assert [e for e in events if leaks(json.dumps(e, ensure_ascii=False, default=str), borrower)] == []
    # the frames a member's socket is sent for the loan cards, live and on resume (`message`, `card.updated`),
    # rendered by the functions the consumer uses
    cards = Message.objects.filter(conversation_id=circle.conversation_id, card_kind="loan_request")
    frames = [frame for m in cards for frame in (chat_events.message_frame(m), chat_events.change_frame(m))]
    assert len(frames) == 4 and {f["message"]["card"]["state"]["status"] for f in frames} == {"active", "funding"}
    assert [f for f in frames if leaks(json.dumps(f, ensure_ascii=False, default=str), borrower)] == []
    pushes = [content for owner, content in recorder.pushes if owner != borrower.pk]
    assert "loans.funded" in {c.data["event"] for c in pushes}  # the lenders were pushed about the loan
    assert [c for c in pushes if leaks(json.dumps(c.__dict__, ensure_ascii=False, default=str), borrower)] == []
    lines = [record.getMessage() for record in every_log_line.records]
    assert lines, "logging was captured"
    assert [line for line in lines if leaks(line, borrower)] == []

    # default: the reveal reaches the lenders of that loan, by name and id, and no one else
    recorder.events.clear()
    recorder.pushes.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.scan_loans(today=due + dt.timedelta(days=30))
    push_everything()
    assert Loan.objects.get(pk=loans[0].pk).status == Loan.Status.DEFAULTED
    for who in ("lender", "other lender"):
        answer = gql(root_query("loanRequest", f"id: {lit(encode_id('LoanRequest', loans[0].pk))}"),
                     token=token_for(viewers[who]))["data"]["loanRequest"]
        assert answer["borrower"]["id"] == user_gid(borrower.pk), who
        assert "user id" in leaks(json.dumps(answer, ensure_ascii=False), borrower)  # the detector sees a reveal
    told = {owner for owner, content in recorder.pushes if borrower.display_name in f"{content.title} {content.body}"
            and content.data["event"] == "loans.defaulted"}
    assert told == {ada.pk, bob.pk}
    stranger = what_a_viewer_sees(gql, token_for(viewers["stranger"]), loans, pledge, circle.conversation_id)
    assert leaks(json.dumps(stranger, ensure_ascii=False, default=str), borrower) == []
    # the other loan, not defaulted, stays anonymous even to the lender who now knows who defaulted
    other = gql(root_query("loanRequest", f"id: {lit(encode_id('LoanRequest', loans[1].pk))}"),
                token=token_for(ada))["data"]["loanRequest"]
    assert other["borrower"] is None
