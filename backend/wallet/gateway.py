"""The bank-gateway interface (top-ups from and withdrawals to the user's bound bank card).

Only a SANDBOX implementation exists: it moves no real money and is refused outside DEBUG and tests unless
the environment says ``ALLOW_SANDBOX_GATEWAY=1`` (or ``QUANZI_WALLET["ALLOW_SANDBOX_GATEWAY"]`` is set). The ledger side of every gateway call is real.

The contract (what a real bank adapter must also honour):
- ``collect`` / ``payout`` are idempotent on ``reference``: the bank executes a reference at most once and
  answers a repeated request with the first outcome. This is what makes a resend after a crash safe.
- ``status`` answers the final outcome of a reference the bank received, raises ``GatewayUnavailable`` when
  there is no definite answer yet, and raises ``ReferenceUnknown`` when the bank never received the
  reference at all (e.g. our process died after committing the operation but before calling the bank).
  "Unknown" must never be reported as success.

Sandbox behaviour is decided by the fen part of the amount (like card networks' magic test numbers), so
phone developers can exercise each path through the API:
- ``…44`` fen (e.g. ¥10.44): declined (``SANDBOX_DECLINED``).
- ``…55`` fen: the bank executes the request but the answer is lost (``GatewayUnavailable``); asking for
  the status later says it succeeded — the ambiguous case a real gateway produces, settled by the recheck.
- anything else: succeeds at once.
The sandbox remembers every reference it received in ``wallet.SandboxBankRecord`` (a table, so a restart
forgets nothing), and answers ``status`` from it: a reference it never received is ``ReferenceUnknown``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils.module_loading import import_string

from backend.core.standins import guard_stand_in

from .limits import wallet_setting


class GatewayUnavailable(Exception):
    """No definite answer (timeout, 5xx). The operation stays pending and is rechecked later."""


class ReferenceUnknown(Exception):
    """The bank has no record of this reference: the request never reached it."""


@dataclass(frozen=True)
class GatewayResult:
    succeeded: bool
    gateway_reference: str = ""
    failure_code: str = ""


class BankGateway(abc.ABC):
    """Calls are idempotent on ``reference`` (our BankOperation.reference)."""

    @abc.abstractmethod
    def collect(self, *, reference: str, amount: int) -> GatewayResult:
        """Pull ``amount`` fen from the user's bound card into the bank's settlement account."""

    @abc.abstractmethod
    def payout(self, *, reference: str, amount: int) -> GatewayResult:
        """Push ``amount`` fen to the user's bound card."""

    @abc.abstractmethod
    def status(self, *, kind: str, reference: str, amount: int) -> GatewayResult:
        """The final outcome of an earlier call.

        Raises GatewayUnavailable if the outcome is not known yet, ReferenceUnknown if the bank never
        received ``reference``."""


class SandboxBankGateway(BankGateway):
    """Deterministic sandbox that remembers what it received (``SandboxBankRecord``), like a bank would.

    A reference is executed once: a repeated collect/payout returns the recorded outcome (and counts the
    repeat in ``times_received``); the same reference with another kind or amount is refused.
    """

    DECLINE_FEN = 44
    TIMEOUT_FEN = 55

    def _outcome(self, amount: int) -> GatewayResult:
        if amount % 100 == self.DECLINE_FEN:
            return GatewayResult(succeeded=False, failure_code="SANDBOX_DECLINED")
        return GatewayResult(succeeded=True)

    @staticmethod
    def _as_result(record) -> GatewayResult:
        if record.succeeded:
            return GatewayResult(succeeded=True, gateway_reference=f"sandbox-{record.reference}")
        return GatewayResult(succeeded=False, failure_code=record.failure_code)

    def _receive(self, *, operation: str, reference: str, amount: int) -> GatewayResult:
        from .models import SandboxBankRecord

        outcome = self._outcome(amount)
        try:
            with transaction.atomic():
                record = SandboxBankRecord.objects.create(
                    reference=reference, operation=operation, amount=amount, succeeded=outcome.succeeded,
                    failure_code=outcome.failure_code,
                )
            first = True
        except IntegrityError:  # received before: the bank deduplicates by reference
            SandboxBankRecord.objects.filter(reference=reference).update(times_received=F("times_received") + 1)
            record = SandboxBankRecord.objects.get(reference=reference)
            first = False
        if record.operation != operation or record.amount != amount:
            return GatewayResult(succeeded=False, failure_code="SANDBOX_REFERENCE_REUSED")
        if first and amount % 100 == self.TIMEOUT_FEN:
            raise GatewayUnavailable("sandbox: executed, but the answer was lost (simulated timeout)")
        return self._as_result(record)

    def collect(self, *, reference: str, amount: int) -> GatewayResult:
        return self._receive(operation="collect", reference=reference, amount=amount)

    def payout(self, *, reference: str, amount: int) -> GatewayResult:
        return self._receive(operation="payout", reference=reference, amount=amount)

    def status(self, *, kind: str, reference: str, amount: int) -> GatewayResult:
        from .models import SandboxBankRecord

        record = SandboxBankRecord.objects.filter(reference=reference).first()
        if record is None:
            raise ReferenceUnknown(reference)
        return self._as_result(record)


def get_gateway() -> BankGateway:
    gateway_class = import_string(wallet_setting("BANK_GATEWAY"))
    if issubclass(gateway_class, SandboxBankGateway) and not (
        settings.DEBUG or getattr(settings, "TESTING", False) or sandbox_opted_in()
    ):
        raise ImproperlyConfigured("The sandbox bank gateway moves no real money: refused with DEBUG off "
                                   "(opt in with ALLOW_SANDBOX_GATEWAY=1, staging only).")
    return gateway_class()


def sandbox_opted_in() -> bool:
    """The explicit opt-in: the ALLOW_SANDBOX_GATEWAY environment variable (or QUANZI_WALLET's key)."""
    return bool(getattr(settings, "ALLOW_SANDBOX_GATEWAY", False) or wallet_setting("ALLOW_SANDBOX_GATEWAY"))


def guard_sandbox_at_start_up() -> None:
    """Refuse to start with DEBUG off and the sandbox configured, unless opted in (then say so loudly)."""
    guard_stand_in("ALLOW_SANDBOX_GATEWAY",
                   in_use=issubclass(import_string(wallet_setting("BANK_GATEWAY")), SandboxBankGateway),
                   allowed=sandbox_opted_in(), development=settings.DEBUG or getattr(settings, "TESTING", False),
                   what="the bank gateway is the SANDBOX: top-ups and withdrawals move no real money")
