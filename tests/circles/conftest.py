"""Circles test helpers: users, friendships made through the real services, and error-code short-hands."""

from __future__ import annotations

import itertools

import pytest

from backend.accounts.models import User
from backend.circles import services
from backend.core.errors import DomainError

_phones = itertools.count(1)


def new_user(name: str = "", **fields) -> User:
    n = next(_phones)
    return User.objects.create_user(f"+86137{n:08d}", display_name=name or f"user{n}", **fields)


def befriend(a: User, b: User) -> None:
    request = services.send_friend_request(user=a, to_user_id=b.pk, note="hi")
    services.accept_friend_request(user=b, request_id=request.pk)


def code_of(fn, **kwargs) -> str:
    try:
        fn(**kwargs)
    except DomainError as exc:
        return exc.code
    raise AssertionError(f"{fn.__name__} succeeded")


@pytest.fixture
def people(db):
    """Ada, Bob, Cyd, Dan and Eve: nobody is friends with anybody yet."""
    return [new_user(name) for name in ("Ada", "Bob", "Cyd", "Dan", "Eve")]
