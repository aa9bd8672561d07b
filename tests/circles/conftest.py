"""Circles test helpers: users, friendships made through the real services, and error-code short-hands."""

from __future__ import annotations

import itertools

import pytest

from backend.accounts.models import User
from backend.core.errors import DomainError
from tests.conftest import befriend  # noqa: F401  (circles tests import it from here)

_phones = itertools.count(1)


def new_user(name: str = "", **fields) -> User:
    n = next(_phones)
    return User.objects.create_user(f"+86137{n:08d}", display_name=name or f"user{n}", **fields)


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
