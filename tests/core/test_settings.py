"""Production safety: with DEBUG off the server refuses development secrets, QUANZI_TESTING, and every
development stand-in that was not explicitly opted in to (and says so loudly when one was)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = "import django; django.setup(); print('started')"
STRIPPED = {"QUANZI_TESTING", "DEBUG", "SECRET_KEY", "QUANZI_KEYS", "QUANZI_BLIND_INDEX_KEY", "JWT_SIGNING_KEY",
            "SMS_SENDER", "FCM_CREDENTIALS", "ALLOW_CONSOLE_SMS", "ALLOW_LOGGING_PUSH", "ALLOW_SANDBOX_GATEWAY",
            "ALLOW_DEMO_DATA"}
REAL_SECRETS = {"SECRET_KEY": "x" * 50, "QUANZI_KEYS": "k1=" + "A" * 43 + "=", "QUANZI_BLIND_INDEX_KEY": "y" * 32}
ALL_OPT_INS = {"ALLOW_CONSOLE_SMS": "1", "ALLOW_LOGGING_PUSH": "1", "ALLOW_SANDBOX_GATEWAY": "1"}


def run_with(env_overrides: dict, code: str = CHECK) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED and not k.startswith("PYTEST")}
    env.update({"DJANGO_SETTINGS_MODULE": "backend.settings", **env_overrides})
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)


def test_refuses_to_start_without_debug_and_with_dev_secrets():
    result = run_with({"DEBUG": "0"})
    assert result.returncode != 0
    assert "Refusing to start" in result.stderr and "SECRET_KEY" in result.stderr


def test_starts_with_real_secrets_and_explicit_opt_ins_and_says_so_loudly():
    result = run_with({"DEBUG": "0", **REAL_SECRETS, **ALL_OPT_INS})
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
    for name in ALL_OPT_INS:
        assert f"WARNING: {name}=1" in result.stderr


@pytest.mark.parametrize("missing", sorted(ALL_OPT_INS))
def test_each_development_stand_in_needs_its_own_opt_in(missing):
    opt_ins = {k: v for k, v in ALL_OPT_INS.items() if k != missing}
    result = run_with({"DEBUG": "0", **REAL_SECRETS, **opt_ins})
    assert result.returncode != 0
    assert "Refusing to start" in result.stderr and f"{missing}=1" in result.stderr


def test_quanzi_testing_is_refused_with_debug_off():
    result = run_with({"DEBUG": "0", "QUANZI_TESTING": "1", **REAL_SECRETS, **ALL_OPT_INS})
    assert result.returncode != 0
    assert "QUANZI_TESTING" in result.stderr


def test_quanzi_testing_with_debug_on_is_allowed():
    result = run_with({"DEBUG": "1", "QUANZI_TESTING": "1"})
    assert result.returncode == 0, result.stderr


def test_debug_needs_no_opt_ins_and_prints_no_warnings():
    result = run_with({"DEBUG": "1"})
    assert result.returncode == 0, result.stderr
    assert "WARNING: ALLOW_" not in result.stderr


def test_seed_demo_is_refused_with_debug_off_without_its_opt_in():
    code = "import django; django.setup(); from django.core.management import call_command; call_command('seed_demo')"
    result = run_with({"DEBUG": "0", **REAL_SECRETS, **ALL_OPT_INS}, code=code)
    assert result.returncode != 0
    assert "ALLOW_DEMO_DATA=1" in result.stderr and "published" in result.stderr


def test_start_up_names_each_component_on_one_line(caplog):
    import logging

    from backend.core import startup

    with caplog.at_level(logging.INFO, logger="quanzi.startup"):
        startup.announce()
    lines = [r.getMessage() for r in caplog.records if r.name == "quanzi.startup"]
    assert [line.split(":", 1)[0] for line in lines] == ["database", "channel layer", "cache", "tasks", "SMS"]
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_the_embedded_task_broker_does_not_make_kombu_warn(settings, caplog):
    """Without Redis the broker is kombu's in-memory transport; a URL without a host made kombu log
    "No hostname was supplied" on every task sent."""
    import logging

    from kombu import Connection

    from backend.celery import app

    if settings.REDIS_URL:
        pytest.skip("the embedded broker is used only without REDIS_URL")
    with caplog.at_level(logging.WARNING):
        Connection(app.conf.broker_url)._info()
        with app.connection_for_write() as connection:
            connection.default_channel  # noqa: B018  (opens the in-memory transport)
    assert "No hostname" not in caplog.text
