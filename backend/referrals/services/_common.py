"""What every referrals use case shares: errors, reason codes, device hashing, scope matching, notices."""

from __future__ import annotations

import re
from typing import Any

from backend.core.crypto import keyring
from backend.core.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from backend.notifications.services import notify
from backend.wallet.services import BudgetExhausted  # noqa: F401  (raised by wallet.pay_from_marketing_budget)

from ..models import LENDING

DEVICE_CONTEXT = "referrals.device"
SCOPE_RE = re.compile(r"^lending(?::[A-Za-z0-9_-]{1,40})?$")
KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
REFERENCE_RE = re.compile(r"^[A-Za-z0-9_:.\-]{1,100}$")
DEVICE_RE = re.compile(r"^[A-Za-z0-9_:.\-]{8,200}$")


class Reason:
    """Why a reward was not granted or was taken back: stored on the Reward row and shown in the admin."""

    SELF_REFERRAL_SAME_USER = "SELF_REFERRAL_SAME_USER"
    SELF_REFERRAL_SAME_DEVICE = "SELF_REFERRAL_SAME_DEVICE"
    SELF_REFERRAL_SAME_ID_NUMBER = "SELF_REFERRAL_SAME_ID_NUMBER"
    DAILY_REWARD_CAP = "DAILY_REWARD_CAP"
    BUDGET_EXHAUSTED = "BUDGET_EXHAUSTED"
    ACTION_REVERSED = "ACTION_REVERSED"
    ALL = (SELF_REFERRAL_SAME_USER, SELF_REFERRAL_SAME_DEVICE, SELF_REFERRAL_SAME_ID_NUMBER, DAILY_REWARD_CAP,
           BUDGET_EXHAUSTED, ACTION_REVERSED)


class IgnoredReason:
    """Why a reported event does not count towards a referral (stored on the event)."""

    NOT_REFERRED = "NOT_REFERRED"
    KIND_NOT_QUALIFYING = "KIND_NOT_QUALIFYING"
    AMOUNT_BELOW_MINIMUM = "AMOUNT_BELOW_MINIMUM"
    ALREADY_QUALIFYING = "ALREADY_QUALIFYING"
    ALREADY_DECIDED = "ALREADY_DECIDED"  # the referee's reward was already granted, rejected or clawed back
    CAMPAIGN_NOT_RUNNING = "CAMPAIGN_NOT_RUNNING"


class CampaignNotRunning(Conflict):
    code = "CAMPAIGN_NOT_RUNNING"
    default_message = "This campaign is not running."


class ShareCodeInvalid(NotFound):
    code = "SHARE_CODE_INVALID"
    default_message = "This share code does not exist or its campaign has ended."


class AlreadyAttributed(Conflict):
    code = "ALREADY_ATTRIBUTED"
    default_message = "You were already referred (the first referral counts)."


class ClaimWindowClosed(Conflict):
    code = "CLAIM_WINDOW_CLOSED"
    default_message = "Referral codes can only be entered shortly after signing up."


class SelfReferral(PermissionDenied):
    code = "SELF_REFERRAL"
    default_message = "You cannot use your own share code."


class DeviceIdInvalid(ValidationFailed):
    code = "DEVICE_ID_INVALID"
    default_message = "The device id is 8 to 200 letters, digits or -_:. characters."


class ChannelInvalid(ValidationFailed):
    code = "CHANNEL_INVALID"
    default_message = "The channel is chat, moments or external."


class ReferenceConflict(Conflict):
    code = "REFERENCE_CONFLICT"
    default_message = "This reference was already reported with different details."


class DayInvalid(ValidationFailed):
    code = "DOUBLING_DAY_INVALID"
    default_message = "Choose a day from tomorrow until the card expires, not one already taken by another card."


class CardNotUsable(Conflict):
    code = "CARD_NOT_USABLE"
    default_message = "This card was already used or revoked."


def device_hash(device_id: str) -> str:
    """A keyed hash of a client-supplied device id: compared, never stored in clear."""
    return keyring().blind_index(device_id, context=DEVICE_CONTEXT)


def clean_device_id(value: object, *, field: str = "deviceId") -> str:
    if not isinstance(value, str) or not DEVICE_RE.match(value):
        raise DeviceIdInvalid(field=field)
    return value


def scopes_covering(scope: str) -> list[str]:
    """The boost scopes that apply to `scope`: a named product also gets boosts on lending as a whole."""
    if scope == LENDING:
        return [LENDING]
    return [LENDING, scope]


def clean_scope(value: object, *, field: str = "scope") -> str:
    if not isinstance(value, str) or not SCOPE_RE.match(value):
        raise ValidationFailed('A scope is "lending" or "lending:<product>".', code="SCOPE_INVALID", field=field)
    return value


def tell(user_id: int, *, event: str, title: str, body: str, payload: dict[str, Any] | None = None) -> None:
    notify(recipient_id=user_id, kind="marketing", event=event, title=title, body=body, payload=payload or {},
           collapse_key=f"referrals:{event}")
