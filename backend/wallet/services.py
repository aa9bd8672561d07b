"""Every write of the wallet. Money moves only through the functions here.

Each money-moving service:
- validates its input first (bad input raises a stable code and touches nothing);
- runs in one transaction and locks every account it changes with SELECT … FOR UPDATE in ascending id
  order, so two transfers between the same accounts in opposite directions queue instead of deadlocking;
- takes an idempotency key, scoped to the paying account (``acct:<id>``). Because that account is locked
  before the key is looked up, concurrent requests with one key run one after the other: the second sees
  the first's committed record and returns its result; the same key with a different request raises
  IDEMPOTENCY_CONFLICT. A request that fails leaves no record (nothing of it survives), so it may be retried
  with the same key;
- writes the balance-change alert for every user wallet it moves money on, in the same transaction.

Keys from phones match ``[A-Za-z0-9_-]{8,64}``. Keys from other apps must carry their app's prefix
(``redpacket:…``); the wallet's own derived keys start with ``wallet:``. Phone keys cannot contain ``:``,
so the namespaces never meet.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F

from backend.accounts.models import User
from backend.core import activity_hooks, clock, ratelimit, reach
from backend.core.compiled import CompiledQuery, prepared_cursor
from backend.core.errors import Conflict, DomainError, NotFound, PermissionDenied, ValidationFailed
from backend.core.ids import encode_id
from backend.core.text import is_clean_line
from backend.core.values import is_int
from backend.notifications.services import notify, notify_many, notify_many_embedded

from . import risk, selectors
from .gateway import BankGateway, GatewayResult, GatewayUnavailable, ReferenceUnknown, get_gateway
from .limits import wallet_setting
from .models import BankOperation, Hold, IdempotencyRecord, JournalEntry, LedgerAccount, Leg, ReversalRequest
from .money import format_fen
from .risk import PaymentDeclined  # noqa: F401  (part of this module's surface: wallet.PaymentDeclined)

log = logging.getLogger("quanzi.wallet")

PUBLIC_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
INTERNAL_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*:[A-Za-z0-9_:.\-]{1,90}$")
KIND_RE = re.compile(r"^[a-z][a-z_]{0,29}$")
ALERT_TITLE = "资金变动提醒"


# --- errors (codes are a contract with the phones) ----------------------------------------------


class AmountInvalid(ValidationFailed):
    code = "AMOUNT_INVALID"
    default_message = "The amount must be a whole, positive number of fen."


class AmountTooLarge(ValidationFailed):
    code = "AMOUNT_TOO_LARGE"
    default_message = "The amount is above the limit for one movement."


class IdempotencyKeyInvalid(ValidationFailed):
    code = "IDEMPOTENCY_KEY_INVALID"
    default_message = "Send an idempotency key of 8-64 letters, digits, '-' or '_'."


class MemoTooLong(ValidationFailed):
    code = "MEMO_TOO_LONG"
    default_message = "The memo is too long."


class SelfTransfer(ValidationFailed):
    code = "SELF_TRANSFER"
    default_message = "You cannot send money to yourself."


class InsufficientFunds(DomainError):
    code = "INSUFFICIENT_FUNDS"
    default_message = "Not enough available balance."


class AccountFrozen(DomainError):
    code = "ACCOUNT_FROZEN"
    default_message = "This account is frozen."


class BudgetExhausted(DomainError):
    code = "BUDGET_EXHAUSTED"
    default_message = "The campaign's marketing budget is used up."


class IdempotencyConflict(Conflict):
    code = "IDEMPOTENCY_CONFLICT"
    default_message = "This idempotency key was already used for a different request."


class HoldNotPending(Conflict):
    code = "HOLD_NOT_PENDING"
    default_message = "This hold was already posted or voided."


class AmountExceedsHold(ValidationFailed):
    code = "AMOUNT_EXCEEDS_HOLD"
    default_message = "A hold cannot be posted for more than it holds."


class EntryAlreadyReversed(Conflict):
    code = "ENTRY_ALREADY_REVERSED"
    default_message = "This entry has already been reversed."


class ReversalAlreadyRequested(Conflict):
    code = "REVERSAL_ALREADY_REQUESTED"
    default_message = "A reversal of this entry is already waiting for approval."


class ReversalRequestNotPending(Conflict):
    code = "REVERSAL_REQUEST_NOT_PENDING"
    default_message = "This reversal request was already decided."


class FourEyesRequired(PermissionDenied):
    code = "FOUR_EYES_REQUIRED"
    default_message = "A reversal must be approved by another staff member than the one who requested it."


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    entry: JournalEntry
    replayed: bool = False


@dataclass(frozen=True)
class HoldResult:
    hold: Hold
    replayed: bool = False


@dataclass(frozen=True)
class BankOperationResult:
    operation: BankOperation
    replayed: bool = False


# --- validation -------------------------------------------------------------------------------


def validate_amount(value: object, *, field: str = "amount") -> int:
    """Integer fen, 1 … MAX_AMOUNT_FEN. Booleans, floats, decimals and strings are refused."""
    if not is_int(value):
        raise AmountInvalid(field=field)
    if value <= 0:
        raise AmountInvalid(field=field)
    if value > wallet_setting("MAX_AMOUNT_FEN"):
        raise AmountTooLarge(f"At most {format_fen(wallet_setting('MAX_AMOUNT_FEN'))} at a time.", field=field)
    return value


def _key(value: object, *, public: bool) -> str:
    pattern = PUBLIC_KEY_RE if public else INTERNAL_KEY_RE
    if not isinstance(value, str) or not (pattern.match(value) or (not public and PUBLIC_KEY_RE.match(value))):
        raise IdempotencyKeyInvalid(field="idempotencyKey")
    return value


def _memo(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed("The memo must be text.", code="MEMO_INVALID", field="memo")
    value = " ".join(value.split())  # no line breaks in a statement line
    if not is_clean_line(value):  # NUL, other control characters, bidi overrides, invalid UTF-8
        raise ValidationFailed("The memo contains characters that cannot be shown.", code="MEMO_INVALID",
                               field="memo")
    if len(value) > wallet_setting("MEMO_MAX_LENGTH"):
        raise MemoTooLong(field="memo")
    return value


def clean_memo(value: object) -> str:
    """A memo or note as the ledger stores it (one line, printable, at most MEMO_MAX_LENGTH), or MEMO_*."""
    return _memo(value)


def _kind(value: str) -> str:
    if not isinstance(value, str) or not KIND_RE.match(value):
        raise ValidationFailed("Unknown entry kind.", code="KIND_INVALID", field="kind")
    return value


def _fingerprint(operation: str, **request: object) -> str:
    canonical = json.dumps({"op": operation, **request}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _rate_limit(user: User, *, idempotency_key: object) -> None:
    """Count a money mutation against the user's per-minute limit — unless it replays a recorded key.

    The key is looked up (without a lock) before counting. No race lets a money movement skip the count:
    idempotency records are never deleted, so a request whose key is already recorded can only replay the
    first result or be IDEMPOTENCY_CONFLICT — it moves nothing; a request whose key is not recorded yet
    (including concurrent first attempts with one key) is counted. Replays are counted in their own, larger
    bucket (REPLAYS_PER_MINUTE), so a flood of retries is throttled too without costing real payments.
    """
    limit, bucket = wallet_setting("MONEY_MUTATIONS_PER_MINUTE"), "wallet-money"
    if isinstance(idempotency_key, str) and PUBLIC_KEY_RE.match(idempotency_key):
        wallet_id = (LedgerAccount.objects.filter(kind=LedgerAccount.Kind.USER_WALLET, owner_id=user.pk)
                     .values_list("pk", flat=True).first())
        if wallet_id is not None and IdempotencyRecord.objects.filter(
                scope=f"acct:{wallet_id}", key=idempotency_key).exists():
            limit, bucket = wallet_setting("REPLAYS_PER_MINUTE"), "wallet-replay"
    ratelimit.hit(bucket, str(user.pk), limit=limit, window_seconds=60)


# --- accounts ---------------------------------------------------------------------------------


def ensure_wallet(*, user_id: int) -> LedgerAccount:
    """The user's wallet, opened on first use. Safe under concurrency (the unique constraint decides)."""
    wallet = selectors.wallet_of(user_id)
    if wallet is not None:
        return wallet
    try:
        with transaction.atomic():
            return LedgerAccount.objects.create(kind=LedgerAccount.Kind.USER_WALLET, owner_id=user_id)
    except IntegrityError:
        wallet = selectors.wallet_of(user_id)
        if wallet is None:
            raise
        return wallet


def system_account(kind: str, *, shard: int = 0) -> LedgerAccount:
    """The system account of a kind (external bank, platform revenue, …), created on first use. Only the
    external bank has more than one row (shard); shard 0 is the one other code and tests name."""
    if kind == LedgerAccount.Kind.USER_WALLET or kind not in LedgerAccount.Kind.values:
        raise ValueError(f"not a system account kind: {kind!r}")
    if shard and kind != LedgerAccount.Kind.EXTERNAL_BANK:
        raise ValueError(f"only the external bank is sharded, not {kind!r}")
    account = _first(_SYSTEM_ACCOUNT, LedgerAccount, kind=kind, shard=shard)
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return LedgerAccount.objects.create(kind=kind, shard=shard)
    except IntegrityError:
        return LedgerAccount.objects.get(kind=kind, shard=shard)


def external_bank_account_for(account_id: int) -> LedgerAccount:
    """The external-bank shard a wallet's top-ups and withdrawals post on: (wallet id mod EXTERNAL_BANK_SHARDS).

    Why shards: every top-up and withdrawal moves money on the external bank too; with one row, all of them
    would queue on its lock. Its balance needs no check (it is the one account allowed below zero), so it
    can be spread over rows whose sum is the account's balance (``selectors.system_balance``). A given
    wallet always maps to the same shard, so its movements keep one lock order.
    """
    return system_account(LedgerAccount.Kind.EXTERNAL_BANK,
                          shard=account_id % max(1, int(wallet_setting("EXTERNAL_BANK_SHARDS"))))


def set_frozen(*, account_id: int, frozen: bool, reason: str = "") -> LedgerAccount:
    """Freeze or unfreeze an account (operations). Holds already placed can still be posted or voided."""
    with transaction.atomic():
        account = _lock_accounts([account_id])[account_id]
        account.is_frozen = frozen
        account.frozen_reason = reason[:200] if frozen else ""
        account.save(update_fields=["is_frozen", "frozen_reason"])
        return account


def _lock_accounts(ids: Iterable[int]) -> dict[int, LedgerAccount]:
    return _lock_accounts_for_entry(ids, allocate=False)[0]


def _lock_accounts_for_entry(ids: Iterable[int], *, allocate: bool = True,
                             ) -> tuple[dict[int, LedgerAccount], int | None]:
    """Lock accounts in ascending id order (one statement: PostgreSQL locks rows in ORDER BY order).

    Only the owner's display name is joined (for the balance alert's text), not the whole user row: loading
    the user would decrypt their phone number on every payment for nothing. On PostgreSQL the statement is
    written once (every payment runs it; building it through the ORM each time cost more than running it).

    `allocate` (PostgreSQL): the same statement also draws the id of the entry about to be posted, so its balance
    alerts can be written by the entry's own statement (`_write_entry(entry_id=…)`); elsewhere None. An id
    drawn for an entry that is then refused is never used (ids have gaps anyway).
    """
    wanted = sorted(set(ids))
    connection = transaction.get_connection()
    if not wanted:
        return {}, None
    entry_id = None
    if connection.vendor == "postgresql":
        with prepared_cursor(connection) as cursor:
            cursor.execute(_lock_sql(len(wanted), allocate), wanted)
            rows = cursor.fetchall()
        names = [field.attname for field in LedgerAccount._meta.concrete_fields]
        found = {}
        extra = 2 if allocate else 1
        for row in rows:
            account = LedgerAccount.from_db(connection.alias, names, row[:-extra])
            account.owner_display_name = row[len(names)]
            found[account.pk] = account
            entry_id = row[-1] if allocate else None
    else:
        found = {account.pk: account for account in (
            LedgerAccount.objects.select_for_update(of=("self",))
            .annotate(owner_display_name=F("owner__display_name"))
            .filter(pk__in=wanted)
            .order_by("pk")
        )}
    if len(found) != len(wanted):
        raise NotFound("No such account.", field="account")
    return found, entry_id


@functools.lru_cache(maxsize=32)
def _lock_sql(count: int, allocate: bool = False) -> str:
    """The lock statement for `count` ids (a payment locks two): plain parameters, not an array, which
    psycopg binds with less Python. `allocate`: one entry id more (an InitPlan: drawn once, not per row)."""
    columns = ", ".join(f'a."{field.column}"' for field in LedgerAccount._meta.concrete_fields)
    if allocate:
        columns += (f", u.\"display_name\", (SELECT nextval(pg_get_serial_sequence("
                    f"'{JournalEntry._meta.db_table}', '{JournalEntry._meta.pk.column}')))")
    else:
        columns += ', u."display_name"'
    return (f'SELECT {columns} FROM "{LedgerAccount._meta.db_table}" a '
            f'LEFT JOIN "{User._meta.db_table}" u ON u."id" = a."owner_id" '
            f'WHERE a."id" IN ({", ".join(["%s"] * count)}) ORDER BY a."id" FOR UPDATE OF a')


def _columns(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


# Lookups every payment or bank operation makes (system accounts, idempotency keys), compiled once per process
# (core.compiled): building them through the ORM each time cost several times more than running them.
_SYSTEM_ACCOUNT = CompiledQuery(
    lambda kind, shard: LedgerAccount.objects.filter(kind=kind, shard=shard).order_by("pk")
    .values_list(*_columns(LedgerAccount))[:1],
    kind="sentinel:kind:7392", shard=32_001, prepared=True,
)
_IDEMPOTENCY_RECORD = CompiledQuery(
    lambda scope, key: IdempotencyRecord.objects.filter(scope=scope, key=key).order_by("pk")
    .values_list(*_columns(IdempotencyRecord))[:1],
    scope="sentinel:scope:7392", key="sentinel:key:7392", prepared=True,
)


def _first(query: CompiledQuery, model, **values: object):
    """The first row (lowest id) the compiled look-up finds, as a model instance, or None."""
    connection = transaction.get_connection()
    rows = query.rows(connection, **values)
    return model.from_db(connection.alias, _columns(model), rows[0]) if rows else None


def _check_not_frozen(source: LedgerAccount, destination: LedgerAccount | None = None) -> None:
    """The payer's own frozen account is ACCOUNT_FROZEN; a frozen payee is the generic PAYMENT_DECLINED."""
    if source.is_frozen:
        raise AccountFrozen(field="account" if source.is_user_wallet else None)
    if destination is not None and destination.is_frozen:
        raise PaymentDeclined(field="recipientId" if destination.is_user_wallet else None)


def lock_accounts(account_ids: Iterable[int]) -> None:
    """For apps that move money several times in one transaction (a bill cancelled with refunds): lock every
    account involved up front, in ascending id order, so the later transfers (which lock again, a no-op)
    cannot deadlock with a concurrent payment between the same wallets. Call inside ``transaction.atomic``."""
    _lock_accounts(account_ids)


def _check_funds(account: LedgerAccount, amount: int) -> None:
    if account.kind != LedgerAccount.Kind.EXTERNAL_BANK and account.available < amount:
        raise InsufficientFunds(field="amount")


# --- idempotency ------------------------------------------------------------------------------


def _replay(scope: str, key: str, operation: str, fingerprint: str) -> IdempotencyRecord | None:
    """The first result for this key, or None. Call only while holding the scope account's lock."""
    record = _first(_IDEMPOTENCY_RECORD, IdempotencyRecord, scope=scope, key=key)  # usually none
    if record is None:
        return None
    if record.operation != operation or record.fingerprint != fingerprint:
        raise IdempotencyConflict(field="idempotencyKey")
    return record


def _remember(scope: str, key: str, operation: str, fingerprint: str, **result) -> None:
    IdempotencyRecord.objects.create(scope=scope, key=key, operation=operation, fingerprint=fingerprint, **result)


# --- the ledger core --------------------------------------------------------------------------


class _AlreadyRecorded(Exception):
    """The idempotency key turned out to be recorded (found by the entry's own statement): nothing was written."""


# One statement for an entry on locked accounts (PostgreSQL): the entry, its legs, the accounts' new balances
# and, for a transfer, its idempotency record — unless that key is already recorded, in which case nothing is
# written and no row comes back. Balances are absolute values computed from the locked rows. The legs are a
# VALUES list (one row per leg, the statement written once per leg count): binding four arrays cost more
# Python per payment than the rest of the statement.
#
# With the entry's id drawn by the lock (`_lock_accounts_for_entry`), the statement also writes the entry's
# balance alerts (`notifications.notify_many_embedded`, only if the entry was written): one round trip less
# per transfer, and the alerts are still in the entry's transaction.
@functools.cache
def _entry_sql(leg_count: int, with_id: bool = False, alerts: str | None = None) -> str:
    legs = ", ".join(f"(%(a{n})s::bigint, %(m{n})s::bigint, %(b{n})s::bigint, %(h{n})s::bigint, {n})"
                     for n in range(leg_count))
    entry_id = "id, " if with_id else ""
    entry_id_value = "%(entry_id)s::bigint, " if with_id else ""
    alerts_cte = f", alerts AS (\n    {alerts}\n)" if alerts is not None else ""
    alert_ids = ", (SELECT array_agg(id ORDER BY id) FROM alerts)" if alerts is not None else ""
    return f"""
WITH prior AS (
    SELECT 1 FROM wallet_idempotencyrecord WHERE scope = %(scope)s::text AND key = %(key)s::text
), v (account_id, amount, balance_after, held, n) AS (
    VALUES {legs}
), entry AS (
    INSERT INTO wallet_journalentry ({entry_id}kind, memo, hold_id, reverses_id, initiated_by_id, created_at)
    SELECT {entry_id_value}%(kind)s::text, %(memo)s::text, %(hold)s::bigint, %(reverses)s::bigint, %(initiated_by)s::bigint,
           %(now)s::timestamptz
    WHERE NOT EXISTS (SELECT 1 FROM prior)
    RETURNING id
), legs AS (
    INSERT INTO wallet_leg (entry_id, account_id, amount, balance_after)
    SELECT entry.id, v.account_id, v.amount, v.balance_after FROM entry, v
    ORDER BY v.n
    RETURNING id, account_id
), balances AS (
    UPDATE wallet_ledgeraccount AS a SET balance = v.balance_after, held = v.held
    FROM entry, v
    WHERE a.id = v.account_id
    RETURNING a.id
), record AS (
    INSERT INTO wallet_idempotencyrecord (scope, key, operation, fingerprint, entry_id, created_at)
    SELECT %(scope)s::text, %(key)s::text, %(operation)s::text, %(fingerprint)s::text, entry.id,
           %(now)s::timestamptz FROM entry
    WHERE %(scope)s::text IS NOT NULL
    RETURNING id
){alerts_cte}
SELECT entry.id, (SELECT array_agg(ARRAY[legs.id, legs.account_id]) FROM legs),
       (SELECT count(*) FROM balances){alert_ids} FROM entry
"""


def _write_entry(
    *, kind: str, memo: str, legs: list[tuple[LedgerAccount, int]], hold: Hold | None = None,
    reverses: JournalEntry | None = None, initiated_by_id: int | None = None,
    remember: tuple[str, str, str, str] | None = None, entry_id: int | None = None,
) -> JournalEntry:
    """Post an entry on locked accounts: legs, cached balances and alerts. Legs must sum to zero.

    ``remember`` = (scope, key, operation, fingerprint): also record the idempotency key for this entry, in
    the same statement — or raise ``_AlreadyRecorded`` (writing nothing) if the key is recorded already.
    ``entry_id`` (PostgreSQL, drawn by ``_lock_accounts_for_entry``): the entry's id, so the same statement
    writes its alerts too.
    """
    if len(legs) < 2 or sum(amount for _, amount in legs) != 0 or any(amount == 0 for _, amount in legs):
        raise AssertionError(f"unbalanced entry: {[(a.pk, amount) for a, amount in legs]}")
    if len({account.pk for account, _ in legs}) != len(legs):
        raise AssertionError("an account appears twice in one entry")
    for account, amount in legs:
        if amount < 0:
            _check_funds(account, -amount)
    now = clock.now()
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        return _insert_entry_statement(connection, kind=kind, memo=memo, legs=legs, hold=hold,
                                       reverses=reverses, initiated_by_id=initiated_by_id, now=now,
                                       remember=remember, entry_id=entry_id)
    else:  # SQLite (development and the SQLite test run): the same rows through the ORM
        if remember is not None and IdempotencyRecord.objects.filter(scope=remember[0], key=remember[1]).exists():
            raise _AlreadyRecorded()
        entry = JournalEntry.objects.create(kind=kind, memo=memo, hold=hold, reverses=reverses,
                                            initiated_by_id=initiated_by_id, created_at=now)
        rows = []
        for account, amount in legs:
            account.balance += amount
            rows.append(Leg(entry=entry, account=account, amount=amount, balance_after=account.balance))
        Leg.objects.bulk_create(rows)
        for account, _ in legs:
            LedgerAccount.objects.filter(pk=account.pk).update(balance=account.balance, held=account.held)
        if remember is not None:
            _remember(*remember, entry=entry)
        alerts = _alert_items(entry.pk, memo, rows)
        if alerts:
            notify_many(alerts)
        return entry


def _insert_entry_statement(connection, *, kind: str, memo: str, legs: list[tuple[LedgerAccount, int]],
                            hold: Hold | None, reverses: JournalEntry | None, initiated_by_id: int | None,
                            now: dt.datetime, remember: tuple[str, str, str, str] | None,
                            entry_id: int | None) -> JournalEntry:
    scope, key, operation, fingerprint = remember or (None, None, None, None)
    afters = [account.balance + amount for account, amount in legs]
    params = {
        "scope": scope, "key": key, "operation": operation, "fingerprint": fingerprint,
        "kind": kind, "memo": memo, "hold": hold.pk if hold else None,
        "reverses": reverses.pk if reverses else None, "initiated_by": initiated_by_id, "now": now,
    }
    for n, ((account, amount), after) in enumerate(zip(legs, afters, strict=True)):
        params[f"a{n}"], params[f"m{n}"], params[f"b{n}"], params[f"h{n}"] = account.pk, amount, after, account.held
    embedded = None
    if entry_id is not None:
        alerts = _alert_items(entry_id, memo, [Leg(account=account, amount=amount, balance_after=after)
                                               for (account, amount), after in zip(legs, afters, strict=True)])
        if alerts:
            embedded = notify_many_embedded(alerts, prefix="n", gate="EXISTS (SELECT 1 FROM entry)")
            params.update(embedded.params)
        params["entry_id"] = entry_id
    with prepared_cursor(connection) as cursor:
        cursor.execute(_entry_sql(len(legs), entry_id is not None, embedded.sql if embedded else None), params)
        row = cursor.fetchone()
    if row is None:
        raise _AlreadyRecorded()
    entry_id, leg_ids, updated, *alert_ids = row
    if updated != len(legs):
        raise AssertionError(f"entry #{entry_id}: {updated} balances updated for {len(legs)} legs")
    entry = JournalEntry(pk=entry_id, kind=kind, memo=memo, hold=hold, reverses=reverses,
                         initiated_by_id=initiated_by_id, created_at=now)
    entry._state.adding, entry._state.db = False, connection.alias
    leg_of = {account_id: leg_id for leg_id, account_id in leg_ids}
    rows = []
    for (account, amount), after in zip(legs, afters, strict=True):
        account.balance = after
        leg = Leg(pk=leg_of[account.pk], entry=entry, account=account, amount=amount, balance_after=after)
        leg._state.adding, leg._state.db = False, connection.alias
        rows.append(leg)
    if embedded is not None:  # written by the statement: announce them
        embedded.finish(alert_ids[0] or [])
    elif "entry_id" not in params:  # no id drawn beforehand: the alerts have a statement of their own
        alerts = _alert_items(entry.pk, memo, rows)
        if alerts:
            notify_many(alerts)
    return entry


def _alert_items(entry_id: int, memo: str, legs: list[Leg]) -> list[dict]:
    """资金变动提醒: one notification per user wallet the entry moves money on, written in its transaction.
    Each leg's `balance_after` is its account's balance after the entry."""
    alerts = []
    for leg in legs:
        account = leg.account
        if not account.is_user_wallet:
            continue
        other = selectors.counterparty_leg(leg, legs)
        who = selectors.account_label(other.account) if other is not None else ""
        if leg.amount > 0:
            line = f"收入 {format_fen(leg.amount)}" + (f"，来自 {who}" if who else "")
        else:
            line = f"支出 {format_fen(-leg.amount)}" + (f"，付给 {who}" if who else "")
        body = f"{line}。可用余额 {format_fen(leg.balance_after - account.held)}。"
        if memo:
            body += f"备注：{memo}"
        alerts.append(dict(
            recipient_id=account.owner_id, kind="money", event="wallet.balance_changed", title=ALERT_TITLE,
            body=body,
            payload={"entry_id": encode_id("JournalEntry", entry_id), "wallet_id": encode_id("Wallet", account.pk)},
        ))
    return alerts


def transfer(
    *, source_id: int, destination_id: int, amount: int, idempotency_key: str, memo: str = "",
    kind: str = JournalEntry.Kind.TRANSFER, initiated_by_id: int | None = None,
) -> Movement:
    """Move money between two ledger accounts at once. The building block of every money feature."""
    amount = validate_amount(amount)
    key = _key(idempotency_key, public=False)
    memo, kind = _memo(memo), _kind(kind)
    if source_id == destination_id:
        raise SelfTransfer(field="recipientId")
    scope = f"acct:{source_id}"
    fingerprint = _fingerprint("transfer", source=source_id, destination=destination_id, amount=amount,
                               memo=memo, kind=kind)
    # No savepoint when a caller's transaction is open (two round trips saved): a refusal is raised only
    # after the block has ended normally, having written nothing, so the caller's transaction stays usable.
    # (An unexpected database error still marks the caller's transaction for rollback, as it should.)
    refusal: Exception | None = None
    with transaction.atomic(savepoint=False):
        try:
            entry = _transfer_locked(source_id, destination_id, amount=amount, memo=memo, kind=kind,
                                     initiated_by_id=initiated_by_id, remember=(scope, key, "transfer", fingerprint))
        except (DomainError, _AlreadyRecorded) as exc:
            # A replay answers as the first request did, even if the accounts could not pay it again now.
            try:
                record = None if isinstance(exc, NotFound) else _replay(scope, key, "transfer", fingerprint)
            except IdempotencyConflict as conflict:
                record, refusal = None, conflict
            if record is not None:
                return Movement(entry=record.entry, replayed=True)
            refusal = refusal or (exc if isinstance(exc, DomainError) else AssertionError("idempotency key vanished"))
    if refusal is not None:
        raise refusal
    return Movement(entry=entry)


def _transfer_locked(source_id: int, destination_id: int, *, amount: int, memo: str, kind: str,
                     initiated_by_id: int | None, remember: tuple[str, str, str, str]) -> JournalEntry:
    """The hot path: lock both accounts, then one statement for the key lookup, the entry, its legs, both
    balances and the key's record, which writes nothing if the key is recorded already (``_AlreadyRecorded``;
    the source's lock is held, so the lookup cannot be outraced). Refusals are raised before any write."""
    accounts, entry_id = _lock_accounts_for_entry([source_id, destination_id])
    source, destination = accounts[source_id], accounts[destination_id]
    _check_not_frozen(source, destination)
    _check_funds(source, amount)
    return _write_entry(kind=kind, memo=memo, legs=[(source, -amount), (destination, amount)],
                        initiated_by_id=initiated_by_id, remember=remember, entry_id=entry_id)


def pay_from_marketing_budget(*, user_id: int | None, amount: int, kind: str, idempotency_key: str, memo: str,
                              allocation=None, destination_id: int | None = None) -> JournalEntry:
    """Marketing budget → the user's wallet: one helper for every promotional payout (campaign prizes and
    cash-back, referral welcome bonuses and doubling cards). `allocation` is the promoting app's campaign row,
    locked by the caller, with a `spent` field and a `remaining` property; it is charged `amount`. Neither the
    allocation nor the marketing account ever goes below zero: BUDGET_EXHAUSTED instead, and nothing moves.
    `destination_id` (instead of `user_id`) pays another ledger account, e.g. the escrow of a platform-sent
    red packet (payments.send_platform_red_packet)."""
    if allocation is not None and amount > allocation.remaining:
        raise BudgetExhausted()
    budget = system_account(LedgerAccount.Kind.MARKETING_BUDGET)
    if destination_id is None:
        destination_id = ensure_wallet(user_id=user_id).pk
    try:  # a refused transfer writes nothing and leaves the caller's transaction usable (no savepoint needed)
        entry = transfer(source_id=budget.pk, destination_id=destination_id, amount=amount, kind=kind,
                         idempotency_key=idempotency_key, memo=memo).entry
    except InsufficientFunds as exc:
        raise BudgetExhausted() from exc
    if allocation is not None:
        type(allocation).objects.filter(pk=allocation.pk).update(spent=F("spent") + amount)
        allocation.spent += amount
    return entry


def send_money(*, sender: User, recipient_id: int, amount: object, idempotency_key: object,
               memo: object = "", risk_confirmation: object = None) -> Movement:
    """A user pays another user from wallet to wallet (the app's plain transfer), after the risk check."""
    _rate_limit(sender, idempotency_key=idempotency_key)
    amount = validate_amount(amount)
    key = _key(idempotency_key, public=True)
    memo = _memo(memo)
    if recipient_id == sender.pk:
        raise SelfTransfer(field="recipientId")
    # Someone the sender may not reach (core.reach: not a friend or circle co-member, or blocked) is answered
    # exactly like a user who does not exist, so sendMoney cannot be used to probe who is there.
    if not selectors.payable_users_for(sender).filter(pk=recipient_id).exists() \
            or not reach.may_contact(sender.pk, recipient_id):
        raise NotFound("No such user.", field="recipientId")
    wallet = selectors.wallet_of(sender.pk)
    if wallet is None or not IdempotencyRecord.objects.filter(scope=f"acct:{wallet.pk}", key=key).exists():
        # a replay of a payment already made is not checked again (its answer is the first one's)
        risk.check_payee(payer_id=sender.pk, payee_id=recipient_id, amount=amount, confirmation=risk_confirmation)
    with transaction.atomic():  # a wallet opened for this transfer disappears if the transfer fails
        source = ensure_wallet(user_id=sender.pk)
        destination = ensure_wallet(user_id=recipient_id)
        movement = transfer(source_id=source.pk, destination_id=destination.pk, amount=amount,
                            idempotency_key=key, memo=memo, initiated_by_id=sender.pk)
        if not movement.replayed:  # campaigns hears of it after commit (core.activity_hooks)
            activity_hooks.report_activity(user_id=sender.pk, kind="transfer", amount=amount,
                                           reference=f"wallet:entry:{movement.entry.pk}",
                                           occurred_at=movement.entry.created_at)
        return movement


# --- holds (two-phase transfers) -----------------------------------------------------------------


def _place_hold_locked(
    *, source: LedgerAccount, destination: LedgerAccount, amount: int, kind: str, memo: str,
    expires_at: dt.datetime | None, initiated_by_id: int | None,
) -> Hold:
    _check_not_frozen(source, destination)
    _check_funds(source, amount)
    source.held += amount
    LedgerAccount.objects.filter(pk=source.pk).update(held=source.held)
    return Hold.objects.create(
        source=source, destination=destination, amount=amount, kind=kind, memo=memo, expires_at=expires_at,
        initiated_by_id=initiated_by_id, created_at=clock.now(),
    )


def place_hold(
    *, source_id: int, destination_id: int, amount: int, idempotency_key: str, memo: str = "",
    kind: str = "hold", expires_at: dt.datetime | None = None, initiated_by_id: int | None = None,
) -> HoldResult:
    """Reserve money on the source for a later post (to the destination) or void. Moves nothing yet."""
    amount = validate_amount(amount)
    key = _key(idempotency_key, public=False)
    memo, kind = _memo(memo), _kind(kind)
    if source_id == destination_id:
        raise SelfTransfer(field="destination")
    scope = f"acct:{source_id}"
    fingerprint = _fingerprint("place_hold", source=source_id, destination=destination_id, amount=amount,
                               memo=memo, kind=kind, expires_at=expires_at)
    with transaction.atomic():
        source = _lock_accounts([source_id])[source_id]  # only the source changes now
        record = _replay(scope, key, "place_hold", fingerprint)
        if record is not None:
            return HoldResult(hold=record.hold, replayed=True)
        destination = LedgerAccount.objects.filter(pk=destination_id).first()
        if destination is None:
            raise NotFound("No such account.", field="destination")
        hold = _place_hold_locked(source=source, destination=destination, amount=amount, kind=kind, memo=memo,
                                  expires_at=expires_at, initiated_by_id=initiated_by_id)
        _remember(scope, key, "place_hold", fingerprint, hold=hold)
        return HoldResult(hold=hold)


def _post_hold_locked(hold: Hold, accounts: dict[int, LedgerAccount], amount: int) -> JournalEntry:
    if hold.status != Hold.Status.PENDING:
        raise HoldNotPending(field="hold")
    if amount > hold.amount:
        raise AmountExceedsHold(field="amount")
    source, destination = accounts[hold.source_id], accounts[hold.destination_id]
    source.held -= hold.amount  # the whole reservation ends; only `amount` moves, the rest is released
    entry = _write_entry(
        kind=hold.kind if hold.kind != "hold" else JournalEntry.Kind.HOLD_POST, memo=hold.memo,
        legs=[(source, -amount), (destination, amount)], hold=hold, initiated_by_id=hold.initiated_by_id,
    )
    hold.status, hold.posted_amount, hold.resolved_at = Hold.Status.POSTED, amount, clock.now()
    hold.save(update_fields=["status", "posted_amount", "resolved_at"])
    return entry


def _void_hold_locked(hold: Hold, source: LedgerAccount) -> None:
    if hold.status != Hold.Status.PENDING:
        raise HoldNotPending(field="hold")
    source.held -= hold.amount
    LedgerAccount.objects.filter(pk=source.pk).update(held=source.held)
    hold.status, hold.resolved_at = Hold.Status.VOIDED, clock.now()
    hold.save(update_fields=["status", "resolved_at"])


def _hold_accounts(hold_id: int) -> tuple[int, int]:
    row = Hold.objects.filter(pk=hold_id).values_list("source_id", "destination_id").first()
    if row is None:
        raise NotFound("No such hold.", field="hold")
    return row


def post_hold(*, hold_id: int, idempotency_key: str, amount: int | None = None) -> Movement:
    """Complete a hold: move `amount` (default: all of it) to its destination and release the rest."""
    if amount is not None:
        amount = validate_amount(amount)
    key = _key(idempotency_key, public=False)
    source_id, destination_id = _hold_accounts(hold_id)
    scope = f"acct:{source_id}"
    fingerprint = _fingerprint("post_hold", hold=hold_id, amount=amount)
    with transaction.atomic():
        accounts = _lock_accounts([source_id, destination_id])
        hold = Hold.objects.select_for_update().get(pk=hold_id)
        record = _replay(scope, key, "post_hold", fingerprint)
        if record is not None:
            return Movement(entry=record.entry, replayed=True)
        entry = _post_hold_locked(hold, accounts, hold.amount if amount is None else amount)
        _remember(scope, key, "post_hold", fingerprint, entry=entry, hold=hold)
        return Movement(entry=entry)


def void_hold(*, hold_id: int, idempotency_key: str) -> HoldResult:
    """Cancel a pending hold: the reserved money is available again. Nothing moves in the ledger."""
    key = _key(idempotency_key, public=False)
    source_id, _ = _hold_accounts(hold_id)
    scope = f"acct:{source_id}"
    fingerprint = _fingerprint("void_hold", hold=hold_id)
    with transaction.atomic():
        source = _lock_accounts([source_id])[source_id]
        hold = Hold.objects.select_for_update().get(pk=hold_id)
        record = _replay(scope, key, "void_hold", fingerprint)
        if record is not None:
            return HoldResult(hold=record.hold, replayed=True)
        _void_hold_locked(hold, source)
        _remember(scope, key, "void_hold", fingerprint, hold=hold)
        return HoldResult(hold=hold)


def void_expired_holds(*, limit: int = 500) -> int:
    """Void pending holds whose expiry has passed (as of clock.now()). Idempotent; returns how many."""
    due = list(
        Hold.objects.filter(status=Hold.Status.PENDING, expires_at__lte=clock.now())
        .order_by("id").values_list("pk", flat=True)[:limit]
    )
    voided = 0
    for hold_id in due:
        try:
            void_hold(hold_id=hold_id, idempotency_key=f"wallet:expire:{hold_id}")
            voided += 1
        except HoldNotPending:
            pass  # posted or voided meanwhile
    return voided


# --- corrections ------------------------------------------------------------------------------


def reverse_entry(*, entry_id: int, idempotency_key: str, memo: str = "",
                  initiated_by_id: int | None = None) -> Movement:
    """Correct an entry with its mirror image. The original stays; an entry can be reversed once."""
    key = _key(idempotency_key, public=False)
    memo = _memo(memo) or f"冲正 Reversal of entry #{entry_id}"
    original = JournalEntry.objects.filter(pk=entry_id).first()
    if original is None:
        raise NotFound("No such entry.", field="entry")
    legs = list(original.legs.order_by("id"))
    scope = f"entry:{entry_id}"
    fingerprint = _fingerprint("reverse_entry", entry=entry_id, memo=memo)
    with transaction.atomic():
        accounts = _lock_accounts(leg.account_id for leg in legs)
        record = _replay(scope, key, "reverse_entry", fingerprint)
        if record is not None:
            return Movement(entry=record.entry, replayed=True)
        if JournalEntry.objects.filter(reverses_id=entry_id).exists():
            raise EntryAlreadyReversed(field="entry")
        entry = _write_entry(
            kind=JournalEntry.Kind.REVERSAL, memo=memo, reverses=original, initiated_by_id=initiated_by_id,
            legs=[(accounts[leg.account_id], -leg.amount) for leg in legs],
        )
        _remember(scope, key, "reverse_entry", fingerprint, entry=entry)
        # whatever the reversed entry earned (points, draws) is taken back after commit (core.activity_hooks)
        activity_hooks.report_reversal(reference=f"wallet:entry:{entry_id}", occurred_at=entry.created_at)
        return Movement(entry=entry)


# --- maker–checker: a reversal needs two staff members ---------------------------------------------

REASON_MAX_LENGTH = 500


def _staff(user: User) -> None:
    if user is None or not user.is_active or not user.is_staff:
        raise PermissionDenied("Only operations staff may do this.", code="STAFF_ONLY")


def check_reversal_request(*, entry_id: int, reason: object) -> str:
    """Can this entry be put up for reversal, for this reason? Returns the cleaned reason. No writes."""
    if not isinstance(reason, str) or not " ".join(reason.split()) or not is_clean_line(" ".join(reason.split())):
        raise ValidationFailed("Say why the entry must be reversed.", code="REASON_REQUIRED", field="reason")
    reason = " ".join(reason.split())
    if len(reason) > REASON_MAX_LENGTH:
        raise ValidationFailed(f"At most {REASON_MAX_LENGTH} characters.", code="REASON_TOO_LONG", field="reason")
    if not JournalEntry.objects.filter(pk=entry_id).exists():
        raise NotFound("No such entry.", field="entry")
    if JournalEntry.objects.filter(reverses_id=entry_id).exists():
        raise EntryAlreadyReversed(field="entry")
    if ReversalRequest.objects.filter(entry_id=entry_id, status=ReversalRequest.Status.PENDING).exists():
        raise ReversalAlreadyRequested(field="entry")
    return reason


def request_reversal(*, entry_id: int, requested_by: User, reason: object) -> ReversalRequest:
    """The maker: ask for an entry to be reversed. Nothing moves until another staff member approves."""
    _staff(requested_by)
    reason = check_reversal_request(entry_id=entry_id, reason=reason)
    try:
        with transaction.atomic():
            return ReversalRequest.objects.create(entry_id=entry_id, reason=reason, requested_by=requested_by)
    except IntegrityError as exc:  # a concurrent request for the same entry won
        raise ReversalAlreadyRequested(field="entry") from exc


def _locked_request(request_id: int) -> ReversalRequest:
    request = ReversalRequest.objects.select_for_update().filter(pk=request_id).first()
    if request is None:
        raise NotFound("No such reversal request.", field="request")
    return request


def approve_reversal(*, request_id: int, approver: User) -> ReversalRequest:
    """The checker: post the reversal through reverse_entry, exactly once. Approving an approved request
    again returns it unchanged (idempotent); the requester can never approve their own request."""
    _staff(approver)
    with transaction.atomic():
        request = _locked_request(request_id)  # concurrent approvals queue here
        if request.status == ReversalRequest.Status.APPROVED:
            return request
        if request.status != ReversalRequest.Status.PENDING:
            raise ReversalRequestNotPending(field="request")
        if approver.pk == request.requested_by_id:
            raise FourEyesRequired(field="request")
        movement = reverse_entry(
            entry_id=request.entry_id, idempotency_key=f"wallet:reversal_request:{request.pk}",
            initiated_by_id=approver.pk,
        )
        request.status, request.decided_by, request.decided_at = ReversalRequest.Status.APPROVED, approver, clock.now()
        request.reversal = movement.entry
        request.save(update_fields=["status", "decided_by", "decided_at", "reversal"])
        return request


def reject_reversal(*, request_id: int, checker: User) -> ReversalRequest:
    """The checker declines: nothing is posted. (Also by another staff member than the requester.)"""
    _staff(checker)
    with transaction.atomic():
        request = _locked_request(request_id)
        if request.status != ReversalRequest.Status.PENDING:
            raise ReversalRequestNotPending(field="request")
        if checker.pk == request.requested_by_id:
            raise FourEyesRequired(field="request")
        request.status, request.decided_by, request.decided_at = ReversalRequest.Status.REJECTED, checker, clock.now()
        request.save(update_fields=["status", "decided_by", "decided_at"])
        return request


# --- top-up and withdrawal through the bank gateway ---------------------------------------------


def _begin_bank_operation(*, user: User, kind: str, amount: object, idempotency_key: object,
                          ) -> BankOperationResult:
    _rate_limit(user, idempotency_key=idempotency_key)
    amount = validate_amount(amount)
    key = _key(idempotency_key, public=True)
    with transaction.atomic():
        wallet_id = ensure_wallet(user_id=user.pk).pk
        wallet = _lock_accounts([wallet_id])[wallet_id]
        scope = f"acct:{wallet.pk}"
        fingerprint = _fingerprint(kind, amount=amount)
        record = _replay(scope, key, kind, fingerprint)
        if record is not None:
            return BankOperationResult(operation=record.bank_operation, replayed=True)
        _check_not_frozen(wallet)
        hold = None
        if kind == BankOperation.Kind.WITHDRAWAL:
            hold = _place_hold_locked(source=wallet, destination=external_bank_account_for(wallet.pk), amount=amount,
                                      kind=JournalEntry.Kind.WITHDRAWAL, memo="提现到银行卡 Withdrawal to bank card",
                                      expires_at=None, initiated_by_id=user.pk)
        now = clock.now()
        operation = BankOperation.objects.create(kind=kind, account=wallet, amount=amount, hold=hold,
                                                 created_at=now, last_sent_at=now)
        _remember(scope, key, kind, fingerprint, bank_operation=operation)
        return BankOperationResult(operation=operation)


def top_up(*, user: User, amount: object, idempotency_key: object) -> BankOperationResult:
    """Pull money from the user's bank card (gateway), then credit the wallet from the external-bank account."""
    started = _begin_bank_operation(user=user, kind=BankOperation.Kind.TOP_UP, amount=amount,
                                    idempotency_key=idempotency_key)
    return BankOperationResult(operation=_drive(started), replayed=started.replayed)


def withdraw(*, user: User, amount: object, idempotency_key: object) -> BankOperationResult:
    """Hold the money, ask the gateway to pay it out, then post the hold (paid) or void it (failed)."""
    started = _begin_bank_operation(user=user, kind=BankOperation.Kind.WITHDRAWAL, amount=amount,
                                    idempotency_key=idempotency_key)
    return BankOperationResult(operation=_drive(started), replayed=started.replayed)


def _send(gateway: BankGateway, operation: BankOperation) -> GatewayResult:
    reference = str(operation.reference)
    if operation.kind == BankOperation.Kind.TOP_UP:
        return gateway.collect(reference=reference, amount=operation.amount)
    return gateway.payout(reference=reference, amount=operation.amount)


def _no_answer(operation: BankOperation) -> BankOperation:
    log.warning("bank gateway gave no answer for %s #%s; will recheck", operation.kind, operation.pk)
    BankOperation.objects.filter(pk=operation.pk).update(last_checked_at=clock.now())
    operation.refresh_from_db()
    return operation


def _drive(started: BankOperationResult) -> BankOperation:
    """Ask the gateway (outside any transaction) and settle. A retry asks for the status instead.

    The first call sends the request (its BankOperation row, with ``last_sent_at``, committed before). A
    retry — the client's, or the recheck task's — asks for the status; when the bank never received the
    reference (the process died between that commit and the call) see ``_unknown_to_the_bank``.
    """
    operation = started.operation
    if operation.status != BankOperation.Status.PENDING:
        return operation
    gateway = get_gateway()
    try:
        if not started.replayed:
            result = _send(gateway, operation)
        else:
            asked_at = clock.now()
            try:
                result = gateway.status(kind=operation.kind, reference=str(operation.reference),
                                        amount=operation.amount)
            except ReferenceUnknown:
                return _unknown_to_the_bank(gateway, operation, asked_at=asked_at)
    except GatewayUnavailable:
        return _no_answer(operation)
    return settle_bank_operation(operation_id=operation.pk, result=result)


NEVER_RECEIVED = GatewayResult(succeeded=False, failure_code="BANK_NEVER_RECEIVED")


def _unknown_to_the_bank(gateway: BankGateway, operation: BankOperation, *, asked_at: dt.datetime
                         ) -> BankOperation:
    """The bank says it never received this pending operation: resend it while young, fail it when old.

    Young (``asked_at − created_at < GATEWAY_RESEND_WITHIN_SECONDS``): resend with the *same* reference. The
    bank executes a reference at most once, so a resend can never pay (or collect) twice, even if the first
    request was only slow and lands after all; and the user asked for this money minutes ago and still
    expects it. Voiding instead would be unsafe while a request might still be in flight: the bank could
    pay it after we released the hold, and the money would leave twice (once from the bank, once spent).

    Old: fail it (a withdrawal's hold is voided, a top-up moves nothing) with ``BANK_NEVER_RECEIVED``. A
    payout the user stopped waiting for should not appear on their card hours later, their money must not
    stay reserved indefinitely, and banks only deduplicate a reference for a bounded time, so resending
    late is no longer guaranteed to happen once. Failing is safe only when nothing we sent can still
    land: no send is started past the resend window (``_claim_resend`` refuses), and the void requires
    that our last send started at least ``GATEWAY_RECHECK_AFTER_SECONDS`` (which must exceed the gateway
    client's timeout) before the status query that said "unknown". Otherwise it stays pending for the
    next recheck.
    """
    window = dt.timedelta(seconds=wallet_setting("GATEWAY_RESEND_WITHIN_SECONDS"))
    if asked_at - operation.created_at < window:
        claimed = _claim_resend(operation.pk, window=window)
        if claimed is None:  # settled meanwhile, or the window closed: the next recheck decides
            return BankOperation.objects.get(pk=operation.pk)
        log.warning("bank never received %s #%s; resending with the same reference", claimed.kind, claimed.pk)
        try:
            result = _send(gateway, claimed)
        except GatewayUnavailable:
            return _no_answer(claimed)
        return settle_bank_operation(operation_id=claimed.pk, result=result)
    in_flight = dt.timedelta(seconds=wallet_setting("GATEWAY_RECHECK_AFTER_SECONDS"))
    log.warning("bank never received %s #%s and it is too old to resend; failing it", operation.kind,
                operation.pk)
    return settle_bank_operation(operation_id=operation.pk, result=NEVER_RECEIVED,
                                 unless_sent_after=asked_at - in_flight)


def _claim_resend(operation_id: int, *, window: dt.timedelta) -> BankOperation | None:
    """Record (and commit) that we are about to resend, so a concurrent void can see it. None: don't send."""
    with transaction.atomic():
        operation = BankOperation.objects.select_for_update().filter(pk=operation_id).first()
        now = clock.now()
        if operation is None or operation.status != BankOperation.Status.PENDING:
            return None
        if now - operation.created_at >= window:
            return None
        operation.last_sent_at = now
        operation.save(update_fields=["last_sent_at"])
        return operation


def settle_bank_operation(*, operation_id: int, result: GatewayResult,
                          unless_sent_after: dt.datetime | None = None) -> BankOperation:
    """Apply the gateway's final answer exactly once: credit / post on success, void on failure.

    ``unless_sent_after``: leave the operation pending if we (re)sent it after that moment (the answer
    may predate a request still in flight).
    """
    row = BankOperation.objects.filter(pk=operation_id).values_list("account_id", "kind", "hold__destination_id").first()
    if row is None:
        raise NotFound(field="operation")
    wallet_id, kind, held_for = row
    # A withdrawal posts to the shard its hold names; a top-up comes from the wallet's shard.
    external_id = held_for if held_for is not None else external_bank_account_for(wallet_id).pk
    with transaction.atomic():
        accounts = _lock_accounts([wallet_id, external_id])
        operation = BankOperation.objects.select_for_update().get(pk=operation_id)
        if operation.status != BankOperation.Status.PENDING:
            return operation  # a concurrent retry or the recheck task settled it first
        if (unless_sent_after is not None and operation.last_sent_at is not None
                and operation.last_sent_at > unless_sent_after):
            return operation
        wallet = accounts[wallet_id]
        now = clock.now()
        if result.succeeded:
            if kind == BankOperation.Kind.TOP_UP:
                operation.entry = _write_entry(
                    kind=JournalEntry.Kind.TOP_UP, memo="银行卡充值 Top-up from bank card",
                    legs=[(accounts[external_id], -operation.amount), (wallet, operation.amount)],
                    initiated_by_id=wallet.owner_id,
                )
            else:
                hold = Hold.objects.select_for_update().get(pk=operation.hold_id)
                operation.entry = _post_hold_locked(hold, accounts, hold.amount)
            operation.status = BankOperation.Status.SUCCEEDED
            operation.gateway_reference = result.gateway_reference[:100]
        else:
            if kind == BankOperation.Kind.WITHDRAWAL:
                _void_hold_locked(Hold.objects.select_for_update().get(pk=operation.hold_id), wallet)
            operation.status = BankOperation.Status.FAILED
            operation.failure_code = (result.failure_code or "GATEWAY_DECLINED")[:40]
            notify(
                recipient_id=wallet.owner_id, kind="money", event="wallet.bank_operation_failed",
                title="银行卡充值失败" if kind == BankOperation.Kind.TOP_UP else "提现失败",
                body=f"{format_fen(operation.amount)} — {operation.failure_code}",
                payload={"bank_operation_id": encode_id("BankOperation", operation.pk)},
            )
        operation.settled_at = operation.last_checked_at = now
        operation.save()
        return operation


def recheck_pending_bank_operations(*, limit: int = 200) -> int:
    """Ask the gateway about operations left pending (timeouts, crashes). Returns how many settled.

    An operation the bank never received is resent with the same reference while young and failed when
    old (see ``_unknown_to_the_bank``); it is never taken for a success.
    """
    cutoff = clock.now() - dt.timedelta(seconds=wallet_setting("GATEWAY_RECHECK_AFTER_SECONDS"))
    pending = list(
        BankOperation.objects.filter(status=BankOperation.Status.PENDING, created_at__lte=cutoff)
        .order_by("id")[:limit]
    )
    settled = 0
    for operation in pending:
        if _drive(BankOperationResult(operation=operation, replayed=True)).status != BankOperation.Status.PENDING:
            settled += 1
    return settled
