"""compose.yaml, parsed (no container runtime here runs a compose stack): every variable it sets is one the backend
documents (docs/settings.md) or Label Studio reads (its installed source), ports and URLs agree, and the backend
service runs the image `make container` builds."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml
from helpers import ROOT

from backend.dev import container

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]
LS_SOURCE = (
    next((ROOT / ".venv-ls" / "lib").glob("python*/site-packages/label_studio"), None)
    if (ROOT / ".venv-ls" / "lib").exists()
    else None
)
# The postgres image's own variables (https://hub.docker.com/_/postgres, "Environment Variables").
POSTGRES_IMAGE_VARIABLES = {"POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"}


def documented_settings() -> set[str]:
    text = (ROOT / "docs" / "settings.md").read_text()
    return set(re.findall(r"^\| `([A-Z_]+)`", text, flags=re.M))


def container_port(service: dict) -> set[int]:
    return {int(str(p).split(":")[-1]) for p in service.get("ports", [])}


def test_the_backend_sets_only_documented_settings_and_runs_the_built_image():
    backend = SERVICES["backend"]
    assert backend["image"] == container.TAG and backend["build"]["context"] == "."
    unknown = set(backend["environment"]) - documented_settings()
    assert not unknown, f"not in docs/settings.md: {sorted(unknown)}"
    assert set(COMPOSE["volumes"]) >= {v.split(":")[0] for s in SERVICES.values() for v in s.get("volumes", [])}
    assert {v.split(":")[1] for v in backend["volumes"]} == {backend["environment"]["DATA_DIR"]}
    assert container_port(backend) == {int(backend["environment"]["PORT"])}
    assert backend["stop_grace_period"] == "30s"


def test_urls_point_at_services_and_their_ports():
    env = SERVICES["backend"]["environment"]
    ls = urlparse(env["LABEL_STUDIO_URL"])
    assert ls.hostname in SERVICES and ls.port in container_port(SERVICES[ls.hostname])
    llm = urlparse(env["LLM_SERVER_URL"])
    assert llm.hostname == "llm-server" and str(llm.port) in SERVICES["llm-server"]["command"]
    assert SERVICES["llm-server"]["profiles"] == ["gpu"]
    assert env["LLM_SERVER_MODEL"] in SERVICES["llm-server"]["command"]
    ls_env = SERVICES["label-studio"]["environment"]
    assert ls_env["POSTGRE_HOST"] in SERVICES and ls_env["POSTGRE_PORT"] == "5432"
    assert ls_env["POSTGRE_NAME"] == SERVICES["postgres"]["environment"]["POSTGRES_DB"]
    assert ls_env["POSTGRE_USER"] == SERVICES["postgres"]["environment"]["POSTGRES_USER"]
    assert ls_env["POSTGRE_PASSWORD"] == SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
    # Label Studio calls the backend on a private address: both SSRF switches off (README, "Connect").
    assert ls_env["ML_BLOCK_LOCAL_IP"] == ls_env["SSRF_PROTECTION_ENABLED"] == "false"
    for name, service in SERVICES.items():
        assert "healthcheck" in service or name == "backend", name  # the backend's is in its image
    assert SERVICES["label-studio"]["image"].endswith(":1.23.2")


@pytest.mark.skipif(LS_SOURCE is None, reason="Label Studio is not installed in .venv-ls: make labelstudio")
def test_label_studio_reads_every_variable_compose_gives_it():
    source = "\n".join(p.read_text(errors="replace") for p in Path(LS_SOURCE).rglob("*.py"))
    for name in SERVICES["label-studio"]["environment"]:
        # get_env reads NAME with or without the LABEL_STUDIO_ prefix
        assert f"'{name}'" in source or f'"{name}"' in source or f"'{name.removeprefix('LABEL_STUDIO_')}'" in source, (
            name
        )
    assert set(SERVICES["postgres"]["environment"]) <= POSTGRES_IMAGE_VARIABLES


def test_the_env_example_names_every_variable_compose_asks_for():
    asked = set(re.findall(r"\$\{([A-Z_]+)", (ROOT / "compose.yaml").read_text()))
    example = {
        line.split("=")[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert asked == example, asked ^ example
