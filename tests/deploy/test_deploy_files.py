"""The container and compose files, checked without a Docker engine: hadolint on the
Dockerfile, `docker-compose config` when a Compose binary is installed, and structural checks
that every path the Dockerfile copies and every command the images run exists in the repository,
that Prometheus scrapes the ports the services listen on, and that the Grafana dashboard only
queries metrics the service exports."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.metrics import Metrics

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            pairs.append((word.upper(), rest.strip()))
    return pairs


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def assert_command_exists(argv: list[str]) -> None:
    """`python -m pkg.mod` must name a module of this repository; other programs must be ones
    the image provides (python, pip)."""
    assert argv[0] in {"python", "pip"}, argv
    if argv[:2] == ["python", "-m"]:
        module = Path(*argv[2].split("."))
        assert ((ROOT / module).with_suffix(".py").exists()
                or (ROOT / module / "__main__.py").exists()), argv


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed")
def test_hadolint_passes() -> None:
    result = subprocess.run(["hadolint", str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_copies_and_runs_what_exists() -> None:
    instructions = dockerfile_instructions()
    copies = [args for word, args in instructions if word == "COPY"]
    assert copies
    for args in copies:
        *sources, _ = shlex.split(args)
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    for word, args in instructions:
        if word == "CMD" or (word == "HEALTHCHECK" and "CMD" in args):
            argv = json.loads(args[args.index("["):])
            assert_command_exists(argv)
        elif word == "RUN":
            assert shlex.split(args)[0] in {"pip", "useradd"}, args
    assert ("USER", "10001") in instructions, "the image must not run as root"
    assert any(word == "HEALTHCHECK" and "/readyz" in args for word, args in instructions)


def test_compose_services_and_commands() -> None:
    spec = compose()
    services = spec["services"]
    assert {"redis", "api", "worker", "worker-gpu", "prometheus", "grafana"} <= set(services)
    for name in ("api", "worker", "worker-gpu"):
        env = services[name]["environment"]
        assert env["TRM_REDIS_URL"].startswith("redis://redis:"), name
        if "command" in services[name]:
            assert_command_exists(services[name]["command"])
    assert "ports" not in services["worker"], "published ports would stop --scale worker=2"
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


def test_compose_config_validates() -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("no docker-compose binary")
    result = subprocess.run([binary, "-f", str(COMPOSE), "--profile", "gpu", "config", "-q"],
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_prometheus_scrapes_the_service_ports() -> None:
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    targets = {job["job_name"]: job["dns_sd_configs"][0] for job in config["scrape_configs"]}
    assert targets["trm-api"]["names"] == ["api"] and targets["trm-api"]["port"] == 8000
    assert set(targets["trm-worker"]["names"]) == {"worker", "worker-gpu"}
    worker_env = compose()["services"]["worker"]["environment"]
    assert int(worker_env["TRM_WORKER_METRICS_PORT"]) == targets["trm-worker"]["port"]


def test_dashboard_queries_exported_metrics() -> None:
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/trm-serve.json").read_text())
    exported = Metrics().render().decode()
    families = set(re.findall(r"^# TYPE (\S+) ", exported, flags=re.M))
    names = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(re.findall(r"\btrm_[a-z_]+", target["expr"]))
    assert names
    for name in names:
        base = re.sub(r"_(bucket|sum|count|total)$", "", name)
        assert base in families or name in families, f"{name} is not exported"
    provisioned = (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    assert "uid: trm-prometheus" in provisioned
