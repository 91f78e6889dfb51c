"""collectors/, compose/ and the Dockerfile agree with each other and with the CLI.

No container engine runs here, so the files are checked, not run: service names,
ports, paths, headers and commands must match what the other side expects.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

from otel_sse.cli import build_parser
from otel_sse.cli.serve import server_config

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose" / "docker-compose.yml"
COLLECTOR = ROOT / "collectors" / "otelcol.yaml"
DOCKERFILE = ROOT / "Dockerfile"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def dockerfile_command() -> list[str]:
    line = next(line for line in DOCKERFILE.read_text().splitlines() if line.startswith("CMD"))
    command: list[str] = json.loads(line[len("CMD"):])
    return command


def host_port(endpoint: str) -> tuple[str, int]:
    match = re.match(r"^(?:https?://)?([^:/]+):(\d+)", endpoint)
    assert match, endpoint
    return match.group(1), int(match.group(2))


def test_compose_services_and_files() -> None:
    compose = load(COMPOSE)
    services = compose["services"]
    assert set(services) == {"jaeger", "gateway", "collector", "workload"}
    for name in ("gateway", "workload"):
        build = services[name]["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    (mount,) = services["collector"]["volumes"]
    source, target, _ = mount.split(":")
    assert (COMPOSE.parent / source).resolve() == COLLECTOR
    assert target == "/etc/otelcol-contrib/config.yaml"
    # Jaeger v2 listens on all interfaces inside its container.
    flags = " ".join(services["jaeger"]["command"])
    for endpoint in ("0.0.0.0:4317", "0.0.0.0:4318", "0.0.0.0:16686"):
        assert endpoint in flags
    assert "16686:16686" in services["jaeger"]["ports"]
    assert services["jaeger"]["image"].startswith("jaegertracing/jaeger:2.")


def test_collector_sends_traces_to_jaeger_and_everything_to_the_gateway() -> None:
    compose, collector = load(COMPOSE), load(COLLECTOR)
    services = compose["services"]
    exporters = collector["exporters"]
    assert host_port(exporters["otlp_grpc/jaeger"]["endpoint"]) == ("jaeger", 4317)
    gateway_host, gateway_port = host_port(exporters["otlp_http/gateway"]["endpoint"])
    assert gateway_host == "gateway"
    assert f"{gateway_port}:{gateway_port}" in services["gateway"]["ports"]
    pipelines = collector["service"]["pipelines"]
    assert pipelines["traces"]["exporters"] == ["otlp_grpc/jaeger", "otlp_http/gateway"]
    assert pipelines["logs"]["exporters"] == ["otlp_http/gateway"]
    assert pipelines["metrics"]["exporters"] == ["otlp_http/gateway"]
    for pipeline in pipelines.values():
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["processors"][0] == "memory_limiter" and "batch" in pipeline["processors"]
    # The producer token travels in a header from a variable the collector is given,
    # which holds what the gateway accepts as its producer token.
    header = exporters["otlp_http/gateway"]["headers"]["Authorization"]
    variable = re.fullmatch(r"Bearer \$\{env:(\w+)\}", header)
    assert variable is not None, header
    collector_env = services["collector"]["environment"]
    gateway_env = services["gateway"]["environment"]
    assert collector_env[variable.group(1)] == gateway_env["OTEL_SSE_PRODUCER_TOKEN"]
    receivers = collector["receivers"]["otlp"]["protocols"]
    for protocol, port in (("grpc", 4317), ("http", 4318)):
        assert receivers[protocol]["endpoint"] == f"0.0.0.0:{port}"
        assert f"{port}:{port}" in services["collector"]["ports"]


def test_the_dockerfile_starts_the_gateway_the_cli_knows() -> None:
    command = dockerfile_command()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[0] in scripts
    args = build_parser().parse_args(command[1:])
    assert args.command == "serve"
    compose = load(COMPOSE)
    gateway = compose["services"]["gateway"]
    # What the container's environment makes of those flags is a valid config.
    environment = {k: v for k, v in gateway["environment"].items()
                   if not str(v).startswith("${")}
    environment["OTEL_SSE_TOKEN"] = "a-token-for-the-test"
    config = server_config(args, environ=environment)
    assert config.host == "0.0.0.0" and config.token == "a-token-for-the-test"
    assert f"{config.port}:{config.port}" in gateway["ports"]
    assert f"{config.grpc_port}:{config.grpc_port}" in gateway["ports"]
    exposed = {int(p) for line in DOCKERFILE.read_text().splitlines()
               if line.startswith("EXPOSE") for p in line.split()[1:]}
    assert {config.port, config.grpc_port} <= exposed
    # The image copies what the package needs.
    for line in DOCKERFILE.read_text().splitlines():
        if line.startswith("COPY"):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_the_workload_reaches_the_gateway_by_its_service_name() -> None:
    compose = load(COMPOSE)
    workload = compose["services"]["workload"]
    command = workload["command"]
    args = build_parser().parse_args(command[1:])
    assert args.command == "demo"
    assert host_port(args.gateway) == ("gateway", 3000)
    assert workload["environment"]["OTEL_SSE_GATEWAY_TOKEN"] == "${OTEL_SSE_TOKEN}"
    assert host_port(workload["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]) == \
        ("jaeger", 4317)


def test_readme_has_the_compose_command() -> None:
    readme = (ROOT / "README.md").read_text()
    command = next(line.strip() for line in COMPOSE.read_text().splitlines()
                   if "docker compose" in line).lstrip("# ")
    assert command in readme
    assert shlex.split(command)[-2:] == ["up", "--build"]
