"""docker/compose.yaml: the production-like topology docs/operations.md describes.

`test_compose_config_resolves_the_file` runs the real Compose CLI (`docker compose config`, else the standalone
`docker-compose config`): it skips only where neither is installed (Compose is a tool, not a service, so
REQUIRE_SERVICES does not make it fail; CI images with Docker have it). The other tests parse the YAML and need
nothing: every process the docs name is a service, with the environment the app needs to start.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
# What a web node, worker or beat cannot start without (DEBUG off): the database, Redis, and the secrets
# settings refuses to default (docs/operations.md, backend/core/startup.py).
REQUIRED_SECRETS = ("SECRET_KEY", "JWT_SIGNING_KEY", "QUANZI_KEYS", "QUANZI_BLIND_INDEX_KEY")
REQUIRED_ENV = ("DATABASE_URL", "REDIS_URL", *REQUIRED_SECRETS)
SECRETS = {name: f"test-{name.lower()}" for name in REQUIRED_SECRETS}


def compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def run_config(env: dict) -> subprocess.CompletedProcess:
    cli = compose_cli()
    if cli is None:
        pytest.skip("no Compose CLI here (neither `docker compose` nor `docker-compose`)")
    clean = {k: v for k, v in os.environ.items() if k not in REQUIRED_SECRETS}
    return subprocess.run([*cli, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60,
                          env={**clean, **env}, cwd=COMPOSE.parent)


def services() -> dict:
    return yaml.safe_load(COMPOSE.read_text())["services"]


def app_services() -> dict:
    """The services that run our image (web nodes, worker, beat, migrate)."""
    return {name: s for name, s in services().items() if "build" in s}


def command_of(service: dict) -> str:
    command = service.get("command")
    return " ".join(command) if isinstance(command, list) else (command or "")


def test_compose_config_resolves_the_file():
    resolved = run_config(SECRETS)
    assert resolved.returncode == 0, resolved.stderr
    config = yaml.safe_load(resolved.stdout)
    assert set(config["services"]) == set(services())
    for name, service in config["services"].items():
        if "build" in service:
            env = service["environment"]
            assert {k: env[k] for k in REQUIRED_SECRETS} == SECRETS, name
            assert env["DATABASE_URL"] and env["REDIS_URL"], name


def test_compose_refuses_to_start_without_the_secrets():
    """`${SECRET_KEY:?…}`: a deploy that forgot a secret stops at `config`, not at run time with a default."""
    missing = run_config({k: v for k, v in SECRETS.items() if k != "QUANZI_KEYS"})
    assert missing.returncode != 0 and "QUANZI_KEYS" in missing.stderr


def test_every_process_the_docs_name_is_a_service():
    docs = OPERATIONS.read_text()
    named = re.findall(r"`((?:daphne|celery) [^`]+)`", docs.split("## ", 1)[0])
    assert {n.split()[0] for n in named} == {"daphne", "celery"}, named  # the Processes line still names them
    commands = {name: command_of(s) for name, s in app_services().items()}
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()
    default_command = " ".join(re.search(r"^CMD \[(.*)\]", dockerfile, re.M).group(1).replace('"', "").split(", "))
    for process in named:
        # a service runs it if its command (or the image's default command, for the web nodes) starts alike
        runs = [name for name, command in commands.items() if (command or default_command).startswith(process)]
        assert runs, f"docs/operations.md names `{process}` but no service in docker/compose.yaml runs it"
    web = [name for name, command in commands.items() if not command]
    assert len(web) >= 2, "two Daphne nodes: the topology the e2e and fault tests assume"
    assert any("migrate" in command for command in commands.values())


def test_every_app_service_has_the_environment_it_needs():
    everything = services()
    for name, service in app_services().items():
        env = service.get("environment") or {}
        assert [k for k in REQUIRED_ENV if not env.get(k)] == [], name
        for secret in REQUIRED_SECRETS:  # required from the deployer's environment, never a default in the file
            assert re.fullmatch(rf"\$\{{{secret}:\?[^}}]+\}}", env[secret]), (name, secret, env[secret])
        for url_var, scheme in (("DATABASE_URL", "postgresql"), ("REDIS_URL", "redis")):
            url = urlsplit(env[url_var])
            assert url.scheme == scheme and url.hostname in everything, (name, url_var)
            assert url.hostname in service.get("depends_on", []), (name, url.hostname)


def test_every_variable_the_file_sets_is_read_by_the_app():
    """A misspelt variable in the file is silently ignored by the app: each must be one the code reads."""
    source = "\n".join(p.read_text() for p in (ROOT / "backend").rglob("*.py"))
    for name, service in app_services().items():
        unread = [k for k in service.get("environment") or {} if f'"{k}"' not in source]
        assert unread == [], name
