"""The deployment files stay true to the code: every process they start exists."""

from __future__ import annotations

import os
import shlex

import pytest
import yaml
from django.core.management import get_commands

from tests.conftest import REPO_DIR

PACS_SERVICES = {"init", "web", "scp", "worker", "beat"}


def compose() -> dict:
    return yaml.safe_load((REPO_DIR / "docker-compose.yml").read_text(encoding="utf-8"))


def command_words(command) -> list[str]:
    if isinstance(command, list):
        words = [str(word) for word in command]
        if words[:2] == ["sh", "-c"]:
            return shlex.split(words[2].replace("&&", " "))
        return words
    return shlex.split(command.replace("&&", " "))


def manage_commands(words: list[str]) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words[:-1]) if word.endswith("manage.py")]


def test_docker_compose_has_the_production_set_of_processes():
    services = compose()["services"]
    assert {"postgres", "redis", "rabbitmq"} | PACS_SERVICES <= set(services)
    for name in PACS_SERVICES:
        assert "pacs-data:/data" in services[name]["volumes"], name
        assert services[name]["environment"]["PACS_DATA_DIR"] == "/data"
    assert "3000:3000" in services["scp"]["ports"]
    assert "8000:8000" in services["web"]["ports"]


def test_every_management_command_in_the_deployment_files_exists():
    available = set(get_commands())
    used: list[str] = []
    for service in compose()["services"].values():
        if "command" in service:
            used += manage_commands(command_words(service["command"]))
    for line in (REPO_DIR / "Procfile").read_text(encoding="utf-8").splitlines():
        if ":" in line:
            used += manage_commands(shlex.split(line.split(":", 1)[1].replace("&&", " ")))
    assert {"migrate", "bootstrap", "runscp"} <= set(used)
    assert set(used) <= available, f"unknown management commands: {set(used) - available}"


def test_web_processes_serve_the_wsgi_module():
    web = command_words(compose()["services"]["web"]["command"])
    assert web[:2] == ["gunicorn", "pacs.wsgi"]
    procfile = (REPO_DIR / "Procfile").read_text(encoding="utf-8")
    assert "web: gunicorn pacs.wsgi" in procfile


@pytest.mark.parametrize("script", ["scripts/install", "scripts/run", "scripts/test", ".ci/run"])
def test_the_scripts_are_executable_strict_bash(script):
    path = REPO_DIR / script
    assert os.access(path, os.X_OK), f"{script} is not executable"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
