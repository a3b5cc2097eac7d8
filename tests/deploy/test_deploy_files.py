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
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from app.metrics import Metrics
from app.middleware import HostPolicy

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


def compose_default(value: str) -> str:
    """What an environment entry becomes when its variable is unset: `${NAME:-x}` -> x."""
    match = re.fullmatch(r"\$\{\w+:-(.*)\}", value)
    return match.group(1) if match else value


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
            assert shlex.split(args)[:3] == ["python", "-m", "app.ort_runtime"] or \
                shlex.split(args)[0] in {"pip", "useradd"}, args
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
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    # The API by name: its Host guard refuses a scrape that sends an IP address as the Host.
    [api_target] = jobs["trm-api"]["static_configs"][0]["targets"]
    assert api_target == f"api:{compose()['services']['api']['environment']['TRM_PORT']}"
    api_env = compose()["services"]["api"]["environment"]
    assert HostPolicy(compose_default(api_env["TRM_ALLOWED_HOSTS"]).split(",")).allows(api_target)
    # Without keys (the default) every route is open, /metrics included.
    assert compose_default(api_env["TRM_API_KEYS"]) == ""
    targets = {name: job["dns_sd_configs"][0] for name, job in jobs.items()
               if "dns_sd_configs" in job}
    # GPU workers answer to the alias `worker`: one name, and nothing absent is scraped
    assert targets["trm-worker"]["names"] == ["worker"]
    aliases = compose()["services"]["worker-gpu"]["networks"]["default"]["aliases"]
    assert aliases == ["worker"]
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


def test_compose_defaults_are_safe() -> None:
    """Published ports listen on loopback unless the operator says otherwise, Grafana has no
    anonymous viewers, and Redis keeps an append-only file on a volume (a restart keeps jobs)."""
    services = compose()["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            assert port.startswith(("127.0.0.1:", "${TRM_PUBLISH_ADDRESS:-127.0.0.1}:")), \
                (name, port)
    assert services["grafana"]["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    redis = services["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    allowed = compose_default(services["api"]["environment"]["TRM_ALLOWED_HOSTS"]).split(",")
    assert "api:*" in allowed and "*" not in allowed
    assert compose_default(services["api"]["environment"]["TRM_METRICS_PUBLIC"]) == "false"


def test_one_image_is_built_for_both_roles() -> None:
    services = compose()["services"]
    assert "build" in services["api"]
    for name in ("worker", "worker-gpu"):
        assert "build" not in services[name], name
        assert services[name]["image"] == services["api"]["image"]
        assert services[name]["pull_policy"] == "never"


def test_dependencies_are_pinned_and_installed_before_the_code() -> None:
    """deploy/constraints.txt pins every direct dependency of the service image at a version
    pyproject.toml allows (.ci/run checks the whole set is current), and the Dockerfile installs
    it before copying any code, so a code change reuses the dependency layer."""
    pins = {}
    for line in (ROOT / "deploy" / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["serve"],
              *project["optional-dependencies"]["scale"],
              *project["optional-dependencies"]["onnx"]]
    for text in direct:
        requirement = Requirement(text)
        name = canonicalize_name(requirement.name)
        if name == "torch":
            continue  # the Dockerfile's TORCH_SPEC, from the device's index
        assert name in pins, f"{name} is not pinned in deploy/constraints.txt"
        assert requirement.specifier.contains(pins[name]), (requirement, pins[name])
    order = [(word, args) for word, args in dockerfile_instructions() if word in {"COPY", "RUN"}]
    install = order.index(("RUN", "pip install -r deploy/constraints.txt"))
    first_code = next(i for i, (word, args) in enumerate(order)
                      if word == "COPY" and args.split()[0] in {"app", "trm_core", "training"})
    assert install < first_code
