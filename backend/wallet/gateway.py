"""The bank-gateway interface (top-ups from and withdrawals to the user's bound bank card).

Only a SANDBOX implementation exists: it moves no real money and is refused outside DEBUG and tests unless
``QUANZI_WALLET["ALLOW_SANDBOX_GATEWAY"]`` is set. The ledger side of every gateway call is real.

Sandbox behaviour is decided by the fen part of the amount (like card networks' magic test numbers), so
phone developers can exercise each path through the API:
- ``…44`` fen (e.g. ¥10.44): declined (``SANDBOX_DECLINED``).
- ``…55`` fen: the first call times out (``GatewayUnavailable``); asking for the status later says it
  succeeded — the ambiguous case a real gateway produces, settled by the recheck task.
- anything else: succeeds at once.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .limits import wallet_setting


class GatewayUnavailable(Exception):
    """No definite answer (timeout, 5xx). The operation stays pending and is rechecked later."""


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
        """The final outcome of an earlier call; raises GatewayUnavailable if still unknown."""


class SandboxBankGateway(BankGateway):
    """Deterministic, stateless sandbox: the outcome is a function of the request, so retries agree."""

    DECLINE_FEN = 44
    TIMEOUT_FEN = 55

    def _outcome(self, reference: str, amount: int, *, first_call: bool) -> GatewayResult:
        fen = amount % 100
        if fen == self.DECLINE_FEN:
            return GatewayResult(succeeded=False, failure_code="SANDBOX_DECLINED")
        if fen == self.TIMEOUT_FEN and first_call:
            raise GatewayUnavailable("sandbox: simulated timeout")
        return GatewayResult(succeeded=True, gateway_reference=f"sandbox-{reference}")

    def collect(self, *, reference: str, amount: int) -> GatewayResult:
        return self._outcome(reference, amount, first_call=True)

    def payout(self, *, reference: str, amount: int) -> GatewayResult:
        return self._outcome(reference, amount, first_call=True)

    def status(self, *, kind: str, reference: str, amount: int) -> GatewayResult:
        return self._outcome(reference, amount, first_call=False)


def get_gateway() -> BankGateway:
    gateway_class = import_string(wallet_setting("BANK_GATEWAY"))
    if issubclass(gateway_class, SandboxBankGateway) and not (
        settings.DEBUG or getattr(settings, "TESTING", False) or wallet_setting("ALLOW_SANDBOX_GATEWAY")
    ):
        raise ImproperlyConfigured("The sandbox bank gateway moves no real money: refused with DEBUG off.")
    return gateway_class()
