"""Concurrency on PostgreSQL: an invite code's use limit and a member's vouch limit hold when many try at once
(each is checked and counted under a row lock), and no database error escapes."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from backend.circles import services
from backend.circles.models import CircleMember, InviteCode, Vouch
from backend.core.errors import DomainError

from .conftest import new_user

THREADS = 8


def race(fn, args: list[dict]) -> tuple[list[str], list[BaseException]]:
    start = threading.Barrier(len(args))
    codes: list[str] = []
    escaped: list[BaseException] = []
    lock = threading.Lock()

    def worker(kwargs: dict) -> None:
        try:
            start.wait()
            fn(**kwargs)
            outcome = "ok"
        except DomainError as exc:
            outcome = exc.code
        except BaseException as exc:  # noqa: BLE001 - anything else is a failure of the test
            with lock:
                escaped.append(exc)
            return
        finally:
            connection.close()
        with lock:
            codes.append(outcome)

    threads = [threading.Thread(target=worker, args=(kwargs,)) for kwargs in args]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return codes, escaped


@pytest.mark.django_db(transaction=True)
def test_an_invite_code_is_never_used_more_than_its_limit(require_postgres):
    owner = new_user("Owner")
    circle = services.create_circle(owner=owner, kind="alumni", name="Race", join_policy="invite_code",
                                    visibility="invite_only")
    invite = services.create_invite_code(actor=owner, circle_id=circle.pk, expires_in_hours=1, max_uses=3)
    joiners = [new_user() for _ in range(THREADS)]
    codes, escaped = race(services.join_with_code, [{"user": u, "code": invite.code} for u in joiners])
    assert escaped == []
    assert sorted(codes) == ["INVITE_EXHAUSTED"] * (THREADS - 3) + ["ok"] * 3
    assert InviteCode.objects.get(pk=invite.pk).uses == 3
    assert CircleMember.objects.filter(circle=circle, left_at__isnull=True).count() == 4
    circle.refresh_from_db()
    assert circle.member_count == 4


@pytest.mark.django_db(transaction=True)
def test_vouch_limit_holds_under_concurrent_vouches(require_postgres):
    owner = new_user("Owner")
    circle = services.create_circle(owner=owner, kind="interest", name="Vouchers")
    members = [new_user() for _ in range(THREADS)]
    for member in members:
        services.join_circle(user=member, circle_id=circle.pk)
    codes, escaped = race(services.vouch, [{"voucher": owner, "circle_id": circle.pk, "vouchee_id": m.pk}
                                           for m in members])
    assert escaped == []
    assert codes.count("ok") == 3 and codes.count("VOUCH_LIMIT_REACHED") == THREADS - 3
    assert Vouch.objects.filter(voucher=owner, withdrawn_at__isnull=True).count() == 3
