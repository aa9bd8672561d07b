"""Share codes, clicks and attribution: the top of the funnel.

Sign-up with a code: accounts may not import referrals, so the new user's app calls `claim_referral` (the
`claimReferral` mutation) right after signing up. It works only for accounts younger than CLAIM_WINDOW_HOURS
and only once per account (first touch wins: Attribution.referee is unique), so an old account cannot be
"re-referred" and a referee can never be moved to another referrer. Nothing in accounts changes.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from backend.accounts.models import User
from backend.core import clock, ratelimit, share_hooks
from backend.core.errors import NotFound

from ..limits import referrals_setting
from ..models import AbuseFlag, Attribution, Campaign, ShareClick, ShareCode
from ._common import (
    AlreadyAttributed,
    CampaignNotRunning,
    ChannelInvalid,
    ClaimWindowClosed,
    SelfReferral,
    ShareCodeInvalid,
    clean_device_id,
    device_hash,
)

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"  # no 0/O, 1/I/L: codes are read aloud and typed
CODE_LENGTH = 8


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def normalize_code(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    if len(code) != CODE_LENGTH or any(c not in CODE_ALPHABET for c in code):
        return None
    return code


def create_share_code(*, user: Any, campaign_id: int, channel: str) -> ShareCode:
    """My share code for a campaign on a channel (made on first share, the same one afterwards); every call
    counts one share in the funnel."""
    ratelimit.hit("referrals-share", str(user.pk), limit=referrals_setting("SHARES_PER_USER_PER_MINUTE"),
                  window_seconds=60)
    if channel not in ShareCode.Channel.values:
        raise ChannelInvalid(field="channel")
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None or not campaign.is_active:
        raise NotFound(field="campaignId")
    if not campaign.is_running():
        raise CampaignNotRunning(field="campaignId")
    return _count_share(user, campaign, channel)


def _count_share(user: Any, campaign: Campaign, channel: str) -> ShareCode:
    """The owner's code for the campaign and channel (made on first share), with one more share counted."""
    for _attempt in range(5):
        existing = ShareCode.objects.filter(owner_id=user.pk, campaign=campaign, channel=channel).first()
        if existing is not None:
            ShareCode.objects.filter(pk=existing.pk).update(share_count=F("share_count") + 1)
            existing.refresh_from_db(fields=["share_count"])
            return existing
        try:
            with transaction.atomic():
                return ShareCode.objects.create(code=_new_code(), owner_id=user.pk, campaign=campaign,
                                                channel=channel, is_staff=user.is_client_manager)
        except IntegrityError:
            continue  # a code collision (retry with a new code) or a concurrent first share (now found)
    raise IntegrityError("could not allocate a share code")


def on_product_shared(share: share_hooks.ProductShare) -> dict[str, str]:
    """core.share_hooks listener: a product card shared through advisors counts as a chat share on the sharer's
    code for the running campaign configured for that product (the oldest, when several are), and the card
    carries the code so the recipients' clicks and sign-ups are traced to it. No campaign: nothing to add."""
    campaign = next((c for c in Campaign.objects.filter(shared_product_id=share.product_id, is_active=True)
                     .order_by("id") if c.is_running()), None)
    if campaign is None:
        return {}
    sharer = User.objects.get(pk=share.sharer_id)
    return {"referral_code": _count_share(sharer, campaign, ShareCode.Channel.CHAT).code}


def _live_code(code: object, *, field: str = "code") -> ShareCode:
    normalized = normalize_code(code)
    share = normalized and ShareCode.objects.select_related("campaign").filter(code=normalized).first()
    if not share or not share.campaign.is_running():
        raise ShareCodeInvalid(field=field)
    return share


def record_click(*, code: object, device_id: object, client_ip: str | None) -> bool:
    """Someone opened a share link (anonymous). One click per code, device and day; rate-limited per IP.
    Returns True when the click was new."""
    ratelimit.hit("referrals-click", client_ip or "unknown", limit=referrals_setting("CLICKS_PER_IP_PER_MINUTE"),
                  window_seconds=60)
    device = clean_device_id(device_id)
    share = _live_code(code)
    now = clock.now()
    try:
        with transaction.atomic():
            ShareClick.objects.create(share_code=share, device_hash=device_hash(device), day=now.date(),
                                      created_at=now)
    except IntegrityError:
        return False
    return True


def claim_referral(*, user: Any, code: object, device_id: object = None) -> Attribution:
    """Attribute me (a new user) to the owner of the code. First touch wins and is final."""
    ratelimit.hit("referrals-claim", str(user.pk), limit=referrals_setting("CLAIMS_PER_USER_PER_MINUTE"),
                  window_seconds=60)
    share = _live_code(code)
    device = clean_device_id(device_id) if device_id not in (None, "") else ""
    if share.owner_id == user.pk:
        raise SelfReferral(field="code")
    if Attribution.objects.filter(referee_id=user.pk).exists():
        raise AlreadyAttributed(field="code")
    window = dt.timedelta(hours=referrals_setting("CLAIM_WINDOW_HOURS"))
    now = clock.now()
    if user.date_joined + window < now:
        raise ClaimWindowClosed(field="code")
    try:
        with transaction.atomic():
            attribution = Attribution.objects.create(
                referee_id=user.pk, referrer_id=share.owner_id, share_code=share, campaign=share.campaign,
                device_hash=device_hash(device) if device else "", created_at=now)
            _flag_velocity(share.owner_id, now)
    except IntegrityError as exc:  # a concurrent claim by the same user won
        raise AlreadyAttributed(field="code") from exc
    return attribution


def _flag_velocity(referrer_id: int, now: dt.datetime) -> None:
    """Flag a referrer for review when sign-ups arrive faster than a person could plausibly bring them (at
    most one open flag at a time)."""
    limit = referrals_setting("VELOCITY_SIGNUPS_PER_HOUR")
    recent = Attribution.objects.filter(referrer_id=referrer_id, created_at__gt=now - dt.timedelta(hours=1)).count()
    if recent > limit and not AbuseFlag.objects.filter(user_id=referrer_id, kind=AbuseFlag.Kind.SIGNUP_VELOCITY,
                                                       reviewed_at__isnull=True).exists():
        AbuseFlag.objects.create(user_id=referrer_id, kind=AbuseFlag.Kind.SIGNUP_VELOCITY, created_at=now,
                                 detail=f"{recent} sign-ups within an hour (limit {limit})")
