"""Hypothesis stateful test: random transfers, holds, posts, voids and key reuse against an in-memory model.

After every step: the whole ledger sums to zero, every tracked account's cached balance and held amount
equal the model's and the rows' (reconcile), no wallet or the marketing budget is below zero counting holds,
and each hold is resolved at most once (posted holds have exactly one posting entry, others none).
Every example runs inside a savepoint that is rolled back, so examples do not see each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from backend.core.errors import DomainError
from backend.wallet import services
from backend.wallet.models import Hold, JournalEntry, LedgerAccount
from backend.wallet.selectors import reconcile

from .conftest import new_user

pytestmark = pytest.mark.django_db

BANK, MARKETING = 0, 1
ACCOUNTS = st.integers(min_value=0, max_value=4)  # 0 bank, 1 marketing, 2-4 user wallets
AMOUNTS = st.one_of(st.integers(min_value=1, max_value=3_000), st.sampled_from([0, -5, 10**12]))
# A small pool makes keys collide often (replays and conflicts); fresh keys keep money moving.
KEYS = st.one_of(st.sampled_from([f"test:k{i}" for i in range(5)]), st.uuids().map(lambda u: f"test:{u.hex}"))


@dataclass
class ModelHold:
    pk: int
    src: int
    dst: int
    amount: int
    status: str = "pending"


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self.ids = [
            services.system_account(LedgerAccount.Kind.EXTERNAL_BANK).pk,
            services.system_account(LedgerAccount.Kind.MARKETING_BUDGET).pk,
            *[services.ensure_wallet(user_id=new_user().pk).pk for _ in range(3)],
        ]
        rows = dict(LedgerAccount.objects.filter(pk__in=self.ids).values_list("pk", "balance"))
        self.balance = [rows[pk] for pk in self.ids]
        self.held = [0] * len(self.ids)
        self.holds: list[ModelHold] = []
        self.keys: dict[tuple[int, str], tuple[tuple, int]] = {}  # (scope account, key) → (request, result)
        self.history: list[tuple[str, dict, int]] = []  # successful calls, to replay exactly

    def teardown(self):
        transaction.set_rollback(True)
        self._atomic.__exit__(None, None, None)

    # --- helpers ---------------------------------------------------------------------------------

    def available(self, i: int) -> int:
        return self.balance[i] - self.held[i]

    def call(self, op: str, kwargs: dict):
        try:
            result = getattr(services, op)(**kwargs)
        except DomainError as exc:
            return "error", exc.code
        if hasattr(result, "entry"):
            return "ok", result.entry.pk
        return "ok", result.hold.pk

    def expect_key(self, scope: int, key: str, request: tuple):
        """The idempotency verdict for a key the model has seen, else None."""
        seen = self.keys.get((scope, key))
        if seen is None:
            return None
        first_request, first_result = seen
        return ("ok", first_result) if first_request == request else ("error", "IDEMPOTENCY_CONFLICT")

    def bad_amount(self, amount) -> str | None:
        if amount <= 0:
            return "AMOUNT_INVALID"
        if amount > 100_000_000:
            return "AMOUNT_TOO_LARGE"
        return None

    def run(self, op: str, kwargs: dict, expected, scope: int, key: str, request: tuple, apply):
        outcome = self.call(op, kwargs)
        if expected is not None:
            assert outcome == expected, (op, kwargs, outcome, expected)
            return outcome
        assert outcome[0] == "ok", (op, kwargs, outcome)
        apply(outcome[1])
        self.keys[(scope, key)] = (request, outcome[1])
        self.history.append((op, kwargs, outcome[1]))
        return outcome

    # --- rules -----------------------------------------------------------------------------------

    @initialize(amounts=st.lists(st.integers(min_value=0, max_value=5_000), min_size=4, max_size=4))
    def fund(self, amounts):
        for i, amount in zip(range(1, 5), amounts, strict=True):
            if amount:
                self.transfer(BANK, i, amount, f"test:fund{i}")

    @rule(src=ACCOUNTS, dst=ACCOUNTS, amount=AMOUNTS, key=KEYS)
    def transfer(self, src, dst, amount, key):
        request = ("transfer", self.ids[src], self.ids[dst], amount)
        expected = None
        if self.bad_amount(amount):
            expected = ("error", self.bad_amount(amount))
        elif src == dst:
            expected = ("error", "SELF_TRANSFER")
        else:
            expected = self.expect_key(src, key, request)
            if expected is None and src != BANK and self.available(src) < amount:
                expected = ("error", "INSUFFICIENT_FUNDS")

        def apply(_entry_id):
            self.balance[src] -= amount
            self.balance[dst] += amount

        self.run("transfer", {"source_id": self.ids[src], "destination_id": self.ids[dst], "amount": amount,
                              "idempotency_key": key}, expected, src, key, request, apply)

    @rule(src=ACCOUNTS, dst=ACCOUNTS, amount=AMOUNTS, key=KEYS)
    def place_hold(self, src, dst, amount, key):
        request = ("place_hold", self.ids[src], self.ids[dst], amount)
        expected = None
        if self.bad_amount(amount):
            expected = ("error", self.bad_amount(amount))
        elif src == dst:
            expected = ("error", "SELF_TRANSFER")
        else:
            expected = self.expect_key(src, key, request)
            if expected is None and src != BANK and self.available(src) < amount:
                expected = ("error", "INSUFFICIENT_FUNDS")

        def apply(hold_id):
            self.held[src] += amount
            self.holds.append(ModelHold(hold_id, src, dst, amount))

        self.run("place_hold", {"source_id": self.ids[src], "destination_id": self.ids[dst], "amount": amount,
                                "idempotency_key": key}, expected, src, key, request, apply)

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), partial=st.one_of(st.none(), st.integers(min_value=1, max_value=3_500)), key=KEYS)
    def post_hold(self, data, partial, key):
        hold = data.draw(st.sampled_from(self.holds))
        request = ("post_hold", hold.pk, partial)
        expected = self.expect_key(hold.src, key, request)
        if expected is None and hold.status != "pending":
            expected = ("error", "HOLD_NOT_PENDING")
        elif expected is None and partial is not None and partial > hold.amount:
            expected = ("error", "AMOUNT_EXCEEDS_HOLD")
        posted = hold.amount if partial is None else partial

        def apply(_entry_id):
            self.held[hold.src] -= hold.amount
            self.balance[hold.src] -= posted
            self.balance[hold.dst] += posted
            hold.status = "posted"

        kwargs = {"hold_id": hold.pk, "idempotency_key": key}
        if partial is not None:
            kwargs["amount"] = partial
        self.run("post_hold", kwargs, expected, hold.src, key, request, apply)

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), key=KEYS)
    def void_hold(self, data, key):
        hold = data.draw(st.sampled_from(self.holds))
        request = ("void_hold", hold.pk)
        expected = self.expect_key(hold.src, key, request)
        if expected is None and hold.status != "pending":
            expected = ("error", "HOLD_NOT_PENDING")

        def apply(_hold_id):
            self.held[hold.src] -= hold.amount
            hold.status = "voided"

        self.run("void_hold", {"hold_id": hold.pk, "idempotency_key": key}, expected, hold.src, key, request, apply)

    @precondition(lambda self: self.history)
    @rule(data=st.data())
    def retry_exactly(self, data):
        """A client retry: the very same call again returns the first result and changes nothing."""
        op, kwargs, first_result = data.draw(st.sampled_from(self.history))
        assert self.call(op, kwargs) == ("ok", first_result)

    # --- invariants ------------------------------------------------------------------------------

    @invariant()
    def ledger_matches_model_and_rows(self):
        rows = dict((pk, (b, h)) for pk, b, h in
                    LedgerAccount.objects.filter(pk__in=self.ids).values_list("pk", "balance", "held"))
        assert [rows[pk] for pk in self.ids] == list(zip(self.balance, self.held, strict=True))
        for i in range(1, 5):
            assert self.available(i) >= 0
        report = reconcile()  # zero-sum entries, sum of legs == cached, held == pending holds, no overdraft
        assert report.ok, report.problems
        assert report.ledger_total == 0

    @invariant()
    def each_hold_resolves_at_most_once(self):
        if not self.holds:
            return
        statuses = dict(Hold.objects.filter(pk__in=[h.pk for h in self.holds]).values_list("pk", "status"))
        postings = set(JournalEntry.objects.filter(hold__in=[h.pk for h in self.holds]).values_list("hold_id", flat=True))
        for hold in self.holds:
            assert statuses[hold.pk] == hold.status
            assert (hold.pk in postings) == (hold.status == "posted")


def test_ledger_state_machine():
    LedgerMachine.TestCase.settings = settings(
        max_examples=25, stateful_step_count=20, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    LedgerMachine.TestCase().runTest()
