"""GraphQL for the wallet: my balance and statement, send money, top up and withdraw. Thin: services decide."""

from __future__ import annotations

import graphene
from graphql.language import FloatValueNode, IntValueNode, StringValueNode

from backend.accounts.ids import decode_user, user_gid
from backend.core import nodes, pagination
from backend.core.errors import NotFound
from backend.core.graphql import MAX_PAGE_SIZE, BaseMutation, register_app_errors, require_user
from backend.core.ids import encode_id

from . import risk, selectors, services
from .models import BankOperation as BankOperationModel
from .models import Hold, LedgerAccount, Leg
from .models import JournalEntry as JournalEntryModel

WalletError = register_app_errors("Wallet", "backend.wallet")  # payload errors; code: WalletErrorCode

DEFAULT_PAGE_SIZE = 20


class Fen(graphene.Scalar):
    """An amount of money in fen (1/100 yuan, CNY) as a JSON integer. Never a float.

    Inputs are passed to the wallet as sent, so a float, a string or an out-of-range number comes back as a
    payload error with a stable code (AMOUNT_INVALID, AMOUNT_TOO_LARGE) rather than a GraphQL error.
    """

    @staticmethod
    def serialize(value):
        return int(value)

    @staticmethod
    def parse_value(value):
        return value

    @staticmethod
    def parse_literal(node, _variables=None):
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, FloatValueNode):
            return float(node.value)
        if isinstance(node, StringValueNode):
            return node.value
        return None


class CounterpartyKind(graphene.Enum):
    USER = "user_wallet"
    BANK = "external_bank"
    PLATFORM = "platform_revenue"
    MARKETING = "marketing_budget"
    LOAN_ESCROW = "loan_escrow"
    RED_PACKET = "payments_escrow"


class Counterparty(graphene.ObjectType):
    """Who was on the other side: a user's display name and avatar (nothing more), or a system label."""

    kind = graphene.Field(CounterpartyKind, required=True)
    display_name = graphene.String(required=True)
    avatar_url = graphene.String(required=True)
    user_id = graphene.ID(description="The other user's id, for user-to-user movements.")


class Direction(graphene.Enum):
    IN = "in"
    OUT = "out"


class StatementLine(graphene.ObjectType):
    """One movement on my wallet."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    entry_id = graphene.ID(required=True, description="The journal entry (alerts carry the same id).")
    kind = graphene.String(required=True, description="transfer, top_up, withdrawal, hold_post, reversal, …")
    direction = graphene.Field(Direction, required=True)
    amount = graphene.Field(Fen, required=True, description="Signed: positive came in, negative went out.")
    balance_after = graphene.Field(Fen, required=True)
    memo = graphene.String(required=True)
    counterparty = graphene.Field(Counterparty)
    created_at = graphene.DateTime(required=True)

    @classmethod
    def from_leg(cls, leg: Leg) -> StatementLine:
        legs = list(leg.entry.legs.all())
        other = selectors.counterparty_leg(leg, legs)
        counterparty = None
        if other is not None:
            account = other.account
            owner = account.owner if account.is_user_wallet else None
            counterparty = Counterparty(
                kind=account.kind, display_name=selectors.account_label(account),
                avatar_url=owner.avatar_url if owner else "",
                user_id=user_gid(owner) if owner else None,
            )
        return cls(
            id=leg.pk, entry_id=encode_id("JournalEntry", leg.entry_id), kind=leg.entry.kind,
            direction="in" if leg.amount > 0 else "out", amount=leg.amount, balance_after=leg.balance_after,
            memo=leg.entry.memo, counterparty=counterparty, created_at=leg.entry.created_at,
        )


class JournalEntry(graphene.ObjectType):
    """One ledger entry as its participant sees it (a balance alert names it): my lines of it only."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    kind = graphene.String(required=True, description="transfer, top_up, withdrawal, hold_post, reversal, …")
    memo = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)
    lines = graphene.List(graphene.NonNull(StatementLine), required=True,
                          description="The movements this entry made on my wallet.")

    @staticmethod
    def resolve_lines(root: JournalEntryModel, info):
        user = require_user(info)
        legs = selectors.statement_lines_of_user(user.pk).filter(entry=root).order_by("id")
        return [StatementLine.from_leg(leg) for leg in legs]


class StatementConnection(graphene.relay.Connection):
    class Meta:
        node = StatementLine


class PendingHold(graphene.ObjectType):
    """Money reserved on my wallet for a payment still in flight (e.g. a withdrawal awaiting the bank).

    It is counted in `held` and not yet in `balance`; it will be paid or released."""

    id = graphene.ID(required=True)
    kind = graphene.String(required=True, description="withdrawal, red_packet, hold, …")
    amount = graphene.Field(Fen, required=True)
    memo = graphene.String(required=True)
    created_at = graphene.DateTime(required=True)
    expires_at = graphene.DateTime(description="Released automatically after this moment, if set.")

    @staticmethod
    def resolve_id(root: Hold, info):
        return encode_id("Hold", root.pk)


class Wallet(graphene.ObjectType):
    """My wallet. available = balance − held; held is money reserved for payments still in flight."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    balance = graphene.Field(Fen, required=True, description="Posted balance, in fen.")
    held = graphene.Field(Fen, required=True, description="Reserved by pending holds, in fen.")
    available = graphene.Field(Fen, required=True, description="What I can spend now: balance − held.")
    is_frozen = graphene.Boolean(required=True)
    statement = graphene.Field(
        graphene.NonNull(StatementConnection),
        first=graphene.Int(description=f"Page size, 1-{MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})."),
        after=graphene.String(),
        description="Movements, newest first. Forward cursor pagination.",
    )
    pending_holds = graphene.Field(
        graphene.NonNull(graphene.List(graphene.NonNull(PendingHold))),
        first=graphene.Int(default_value=MAX_PAGE_SIZE,  # declared: the query cost rule reads it
                           description=f"How many, 1-{MAX_PAGE_SIZE} (default {MAX_PAGE_SIZE})."),
        description="Money reserved for payments in flight, newest first; their amounts add up to `held` "
                    "when all fit on the page.",
    )

    @staticmethod
    def resolve_available(root: LedgerAccount, info):
        return root.available

    @staticmethod
    def resolve_pending_holds(root: LedgerAccount, info, first: int | None = None):
        return list(selectors.pending_holds_of(root)[: pagination.page_size(first, default=MAX_PAGE_SIZE)])

    @staticmethod
    def resolve_statement(root: LedgerAccount, info, first: int | None = None, after: str | None = None):
        size = pagination.page_size(first, default=DEFAULT_PAGE_SIZE)
        rows = selectors.statement_lines(root)
        after_id = pagination.decode_int_cursor(after, kind="statement")
        if after_id is not None:
            rows = rows.filter(pk__lt=after_id)
        page = list(rows[: size + 1])
        has_next = len(page) > size
        page = page[:size]
        edges = [
            StatementConnection.Edge(node=StatementLine.from_leg(leg), cursor=pagination.encode_cursor("statement", leg.pk))
            for leg in page
        ]
        return StatementConnection(
            edges=edges, page_info=pagination.page_info(edges, has_next=has_next, has_previous=after_id is not None)
        )

class BankOperationKind(graphene.Enum):
    TOP_UP = "top_up"
    WITHDRAWAL = "withdrawal"


class BankOperationStatus(graphene.Enum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class BankOperation(graphene.ObjectType):
    """A top-up or withdrawal (SANDBOX gateway in dev and tests: no real money moves)."""

    class Meta:
        interfaces = (graphene.relay.Node,)

    kind = graphene.Field(BankOperationKind, required=True)
    amount = graphene.Field(Fen, required=True)
    status = graphene.Field(BankOperationStatus, required=True)
    failure_code = graphene.String(description="Why the bank refused, when it did.")
    created_at = graphene.DateTime(required=True)
    settled_at = graphene.DateTime()

    @staticmethod
    def resolve_kind(root: BankOperationModel, info):
        return BankOperationModel.Kind(root.kind).value

    @staticmethod
    def resolve_status(root: BankOperationModel, info):
        return BankOperationModel.Status(root.status).value

    @staticmethod
    def resolve_failure_code(root: BankOperationModel, info):
        return root.failure_code or None


nodes.register(StatementLine, scoped=lambda user: selectors.statement_lines_of_user(user.pk),
               render=StatementLine.from_leg)
nodes.register(JournalEntry, model=JournalEntryModel, scoped=lambda user: selectors.journal_entries_of_user(user.pk))
nodes.register(Wallet, model=LedgerAccount, scoped=lambda user: selectors.user_wallets_of(user.pk))
nodes.register(BankOperation, model=BankOperationModel,
               scoped=lambda user: selectors.bank_operations_of_user(user.pk))


class Query(graphene.ObjectType):
    my_wallet = graphene.Field(graphene.NonNull(Wallet), description="My balance and statement.")

    @staticmethod
    def resolve_my_wallet(root, info):
        # A read never writes: wallets are opened at sign-up (wallet.signals) and by migration for older users.
        wallet = selectors.wallet_of(require_user(info).pk)
        if wallet is None:
            raise NotFound("This account has no wallet.")
        return wallet


class MoneyPayload:
    wallet = graphene.Field(Wallet, description="My wallet after the operation.")
    replayed = graphene.Boolean(description="True when this idempotency key was seen before: nothing moved again.")


def _my_wallet(user) -> LedgerAccount:
    return services.ensure_wallet(user_id=user.pk)


class RiskWarning(graphene.ObjectType):
    """融安e信: the payee was reported as a fraud risk. Show `message`; to pay anyway, send the same request
    again with `riskConfirmation: confirmationToken` (valid for 5 minutes, for this payee and amount only)."""

    message = graphene.String(required=True)
    confirmation_token = graphene.String(required=True)


class RiskCheckedMutation(BaseMutation):
    """A payment to a person: a PAYEE_RISK_WARNING error also fills `riskWarning` with the token to confirm."""

    risk_warning = graphene.Field(RiskWarning, description="Set with the PAYEE_RISK_WARNING error.")

    class Meta:
        abstract = True

    @classmethod
    def error_fields(cls, exc) -> dict:
        if isinstance(exc, risk.PayeeRiskWarning):
            return {"risk_warning": RiskWarning(message=exc.message, confirmation_token=exc.confirmation_token)}
        return {}

    @classmethod
    def perform(cls, root, info, **kwargs) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


class SendMoney(MoneyPayload, RiskCheckedMutation):
    """Pay another user from my wallet. Retrying with the same idempotencyKey never pays twice."""

    class Arguments:
        recipient_id = graphene.ID(required=True, description="The recipient's User id.")
        amount = graphene.Argument(Fen, required=True)
        idempotency_key = graphene.String(required=True, description="8-64 of [A-Za-z0-9_-], one per payment.")
        memo = graphene.String()
        risk_confirmation = graphene.String(description="The confirmationToken of a riskWarning, to pay anyway.")

    transfer = graphene.Field(StatementLine, description="The payment as it appears on my statement.")

    @classmethod
    def perform(cls, root, info, recipient_id, amount, idempotency_key, memo="", risk_confirmation=None):
        user = require_user(info)
        recipient_pk = decode_user(recipient_id, field="recipientId")
        movement = services.send_money(sender=user, recipient_id=recipient_pk, amount=amount,
                                       idempotency_key=idempotency_key, memo=memo or "",
                                       risk_confirmation=risk_confirmation)
        wallet = _my_wallet(user)
        leg = selectors.statement_lines(wallet).filter(entry=movement.entry).first()
        return {"transfer": StatementLine.from_leg(leg), "wallet": wallet, "replayed": movement.replayed}


class BankOperationPayload(MoneyPayload):
    operation = graphene.Field(BankOperation)


class _BankOperationMutation(BankOperationPayload, BaseMutation):
    """Top-up and withdrawal take the same input and return the same payload; only the service differs."""

    class Meta:
        abstract = True

    class Arguments:
        amount = graphene.Argument(Fen, required=True)
        idempotency_key = graphene.String(required=True)

    service = None  # services.top_up or services.withdraw

    @classmethod
    def perform(cls, root, info, amount, idempotency_key):
        user = require_user(info)
        result = cls.service(user=user, amount=amount, idempotency_key=idempotency_key)
        return {"operation": result.operation, "wallet": _my_wallet(user), "replayed": result.replayed}


class TopUp(_BankOperationMutation):
    """Add money from my bank card (SANDBOX gateway: amounts ending in 44 fen are declined)."""

    service = staticmethod(services.top_up)


class Withdraw(_BankOperationMutation):
    """Send money to my bank card. The amount is held until the bank confirms, released if it refuses."""

    service = staticmethod(services.withdraw)


class Mutation(graphene.ObjectType):
    send_money = SendMoney.Field()
    top_up = TopUp.Field()
    withdraw = Withdraw.Field()
