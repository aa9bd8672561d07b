"""融安e信 — the risk-account check every payment to a person goes through (``check_payee``).

- A ``block`` hit on the payee (their wallet or their phone number) refuses with PAYEE_RISK_BLOCKED.
- A ``warn`` hit refuses with PAYEE_RISK_WARNING and a short-lived confirmation token; the client shows the
  warning and, if the payer goes on, repeats the call with that token. The token is signed (Django signing,
  HMAC with SECRET_KEY) and bound to payer, payee and amount, so it confirms this payment only.
- Neither says anything about the payee's own account state (frozen or not): that is not the payer's
  business. A frozen payee gets the generic PAYMENT_DECLINED from the ledger instead.
"""

from __future__ import annotations

from django.core import signing
from django.db.models import Q

from backend.accounts.models import User
from backend.core import clock, reach
from backend.core.errors import DomainError

from .models import LedgerAccount, RiskListEntry

CONFIRMATION_SALT = "quanzi.wallet.risk-confirmation"
CONFIRMATION_SECONDS = 300


class PayeeRiskBlocked(DomainError):
    code = "PAYEE_RISK_BLOCKED"
    default_message = ("This payee has been reported for fraud (融安e信). The payment was refused and no money "
                       "was moved.")


class PayeeRiskWarning(DomainError):
    code = "PAYEE_RISK_WARNING"
    default_message = ("This payee has been reported as a possible fraud risk (融安e信). Check who you are "
                       "paying; to go on, confirm and send again with the confirmation token.")

    @property
    def confirmation_token(self) -> str:
        return str(self.details["confirmation_token"])


def hits_for(payee_id: int) -> list[RiskListEntry]:
    """Active risk entries on the payee's wallet or phone number."""
    phone_index = User.objects.filter(pk=payee_id).values_list("phone_index", flat=True).first()
    wallets = LedgerAccount.objects.filter(kind=LedgerAccount.Kind.USER_WALLET, owner_id=payee_id).values("pk")
    match = Q(account_id__in=wallets)
    if phone_index:
        match |= Q(phone_index=phone_index)
    return list(RiskListEntry.objects.filter(match, is_active=True))


def _payload(payer_id: int, payee_id: int, amount: int) -> dict:
    return {"payer": payer_id, "payee": payee_id, "amount": amount}


def confirmation_token(*, payer_id: int, payee_id: int, amount: int) -> str:
    """Signed payer, payee, amount and the moment (core.clock, so operations and tests can move time)."""
    issued = int(clock.now().timestamp())
    return signing.dumps({**_payload(payer_id, payee_id, amount), "at": issued}, salt=CONFIRMATION_SALT)


def _confirmed(token: object, payload: dict) -> bool:
    if not isinstance(token, str) or not token or len(token) > 500:
        return False
    try:
        signed = signing.loads(token, salt=CONFIRMATION_SALT)
    except signing.BadSignature:
        return False
    issued = signed.pop("at", None) if isinstance(signed, dict) else None
    if not isinstance(issued, int):
        return False
    age = clock.now().timestamp() - issued
    return signed == payload and 0 <= age <= CONFIRMATION_SECONDS


class PaymentDeclined(DomainError):
    """The payee cannot take this payment now. Deliberately says nothing about why: a payer must not learn that
    someone else's account is frozen, or that they were blocked by the payee (or anything else of theirs)."""

    code = "PAYMENT_DECLINED"
    default_message = "This payment cannot be completed. No money was moved."


def check_payee(*, payer_id: int, payee_id: int, amount: int, confirmation: object = None) -> None:
    """Raise PAYEE_RISK_BLOCKED, or PAYEE_RISK_WARNING unless `confirmation` is this payment's valid token.

    Every payment to a person passes here, so the social block is enforced here too: a payee who blocked the
    payer (core.reach, circles' rule) declines the payment with the same generic answer as a frozen wallet."""
    if reach.blocked_since(payee_id, payer_id) is not None:
        raise PaymentDeclined(field="recipientId")
    hits = hits_for(payee_id)
    if not hits:
        return
    if any(hit.level == RiskListEntry.Level.BLOCK for hit in hits):
        raise PayeeRiskBlocked(field="recipientId")
    payload = _payload(payer_id, payee_id, amount)
    if _confirmed(confirmation, payload):
        return
    raise PayeeRiskWarning(field="riskConfirmation",
                           confirmation_token=confirmation_token(payer_id=payer_id, payee_id=payee_id, amount=amount))
