"""Wallet configuration: defaults here, overridable with ``settings.QUANZI_WALLET = {...}``.

Read at call time (not import time) so tests and operators can change a limit without a restart.
"""

from __future__ import annotations

from typing import Any

from backend.core.appsettings import app_setting

DEFAULTS: dict[str, Any] = {
    # The largest single movement, in fen (¥1,000,000). Anything bigger is AMOUNT_TOO_LARGE.
    "MAX_AMOUNT_FEN": 100_000_000,
    # Money mutations (send, top up, withdraw) per user per minute, counted on the shared cache.
    "MONEY_MUTATIONS_PER_MINUTE": 20,
    # Replays of an already-recorded idempotency key do not count above; they have their own bucket.
    "REPLAYS_PER_MINUTE": 120,
    "MEMO_MAX_LENGTH": 140,
    # Dotted path of the BankGateway implementation. Only the sandbox exists so far.
    "BANK_GATEWAY": "backend.wallet.gateway.SandboxBankGateway",
    # The sandbox refuses to run outside DEBUG/tests unless this is set explicitly (staging).
    "ALLOW_SANDBOX_GATEWAY": False,
    # A bank operation still pending after this many seconds is asked about by the settle task.
    "GATEWAY_RECHECK_AFTER_SECONDS": 60,
    # When the bank says it never received a pending operation's reference: resend it with the same
    # reference while the operation is younger than this, fail it (void the withdrawal hold) after.
    # Must be below the bank's deduplication window. See services.recheck_pending_bank_operations.
    "GATEWAY_RESEND_WITHIN_SECONDS": 15 * 60,
    # Rows the external-bank account is spread over: a wallet's top-ups and withdrawals post on shard
    # (wallet id mod N), so concurrent ones lock different rows. Raising it is safe at any time (shards are
    # opened on first use); lowering it leaves the higher shards with their balances, still summed.
    "EXTERNAL_BANK_SHARDS": 16,
}


def wallet_setting(name: str) -> Any:
    return app_setting("QUANZI_WALLET", DEFAULTS, name)
