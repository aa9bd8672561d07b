"""Production safety: the server refuses to start with DEBUG off and development secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = "import django; django.setup(); print('started')"


def run_with(env_overrides: dict) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"QUANZI_TESTING", "DEBUG", "SECRET_KEY", "QUANZI_KEYS",
                                                          "QUANZI_BLIND_INDEX_KEY"}}
    env.update({"DJANGO_SETTINGS_MODULE": "backend.settings", **env_overrides})
    return subprocess.run([sys.executable, "-c", CHECK], cwd=ROOT, env=env, capture_output=True, text=True)


def test_refuses_to_start_without_debug_and_with_dev_secrets():
    result = run_with({"DEBUG": "0"})
    assert result.returncode != 0
    assert "Refusing to start" in result.stderr and "SECRET_KEY" in result.stderr


def test_starts_with_real_secrets():
    key = "k1=" + "A" * 43 + "="
    result = run_with({"DEBUG": "0", "SECRET_KEY": "x" * 50, "QUANZI_KEYS": key, "QUANZI_BLIND_INDEX_KEY": "y" * 32})
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


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
