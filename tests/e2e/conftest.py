"""A real Daphne on a free loopback port, pointed at the test database (and Redis when configured)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import CHILD_PROCESS_OPT_INS

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DaphneNode:
    def __init__(self, env: dict, log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), "backend.asgi:application"],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self._wait_ready()

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/"

    def _wait_ready(self) -> None:
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.http}/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"daphne did not start:\n{self.log_path.read_text()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def node_env(extra: dict | None = None) -> dict:
    settings_dict = connection.settings_dict
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST") and k != "QUANZI_TESTING"}
    env.update({**CHILD_PROCESS_OPT_INS, "PYTHONUNBUFFERED": "1", "DJANGO_SETTINGS_MODULE": "backend.settings"})
    if connection.vendor == "postgresql":
        env["DATABASE_URL"] = (
            f"postgresql://{settings_dict['USER']}:{settings_dict['PASSWORD']}@{settings_dict['HOST'] or '127.0.0.1'}"
            f":{settings_dict['PORT'] or 5432}/{settings_dict['NAME']}"
        )
    else:
        env.pop("DATABASE_URL", None)
        env["SQLITE_PATH"] = str(settings_dict["NAME"])
    env.update(extra or {})
    return env


@pytest.fixture
def daphne_nodes(transactional_db, tmp_path):
    """Start N Daphne processes sharing the database (and Redis, when REDIS_URL is set)."""
    nodes: list[DaphneNode] = []

    def start(count: int = 1, **extra_env) -> list[DaphneNode]:
        for _ in range(count):
            nodes.append(DaphneNode(node_env(extra_env), tmp_path / f"daphne-{len(nodes)}.log"))
        return nodes[-count:]

    yield start
    for node in nodes:
        node.stop()
