"""Fixtures for the notifications tests: a stub FCM server on loopback, a service account for it, users."""

from __future__ import annotations

import json
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.db import connection

from backend.accounts.models import Device, User
from backend.celery import app as celery_app
from backend.notifications.models import Notification
from tests.conftest import CHILD_PROCESS_OPT_INS

from .fcm_stub import StubFcm


@pytest.fixture(scope="session")
def _fcm_server(tmp_path_factory):
    """One stub FCM server and one generated service-account JSON (its token_uri is the stub) per run."""
    stub = StubFcm()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stub.public_key_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    info = {
        "type": "service_account",
        "project_id": "quanzi-test",
        "private_key_id": "test-key-1",
        "private_key": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        "client_email": "push@quanzi-test.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": stub.token_uri,
    }
    path = tmp_path_factory.mktemp("fcm") / "service-account.json"
    path.write_text(json.dumps(info))
    stub.credentials_path = str(path)
    yield stub
    stub.close()


@pytest.fixture
def fcm(_fcm_server, settings) -> StubFcm:
    """Point the real firebase-admin push backend at the stub for this test."""
    _fcm_server.reset()
    settings.FCM_CREDENTIALS = _fcm_server.credentials_path
    settings.FCM_ENDPOINT = _fcm_server.base_url
    return _fcm_server


@pytest.fixture(autouse=True)
def eager_tasks():
    """Tasks run in-process unless a test turns this off to go through the real Redis broker."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


_phones = iter(range(13700000000, 13799999999))


def make_user(*devices: tuple[str, str] | tuple[str, str, str], name: str = "Ada") -> User:
    """A user with devices given as (platform, fcm_token) or (platform, fcm_token, installation_id)."""
    user = User.objects.create_user(f"+86{next(_phones)}", display_name=name)
    for spec in devices:
        platform, token, fid = (*spec, "")[:3]
        Device.objects.create(user=user, platform=platform, fcm_token=token, installation_id=fid)
    return user


def reload(notification: Notification) -> Notification:
    notification.refresh_from_db()
    return notification


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child Django process that uses this test run's database, Redis and settings."""
    env = dict(os.environ)
    db = connection.settings_dict
    if connection.vendor == "postgresql":
        auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
        env["DATABASE_URL"] = f"postgresql://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(db["NAME"])
    env.pop("QUANZI_TESTING", None)
    env.update({**CHILD_PROCESS_OPT_INS, "CELERY_SKIP_CHECKS": "1", "PYTHONUNBUFFERED": "1", **extra})
    return env
