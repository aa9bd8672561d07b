"""Production safety: the server refuses to start with DEBUG off and development secrets."""

import os
import subprocess
import sys
from pathlib import Path

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
