"""The deployment files are checked offline: every Kubernetes object against the real API
schemas (kubernetes-validate ships them), every embedded gateway config with our own
loader, and the wiring between them (ports, probes, images, env vars, mounts) by hand."""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from gateway import __version__
from gateway.config import ConfigError, load_config_text
from gateway.config.schema import GatewayConfig

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"

# The oldest Kubernetes the examples support (a Service naming a native sidecar's port
# needs 1.32) and the newest the installed schemas know.
K8S_VERSIONS = ("1.32", kubernetes_validate.utils.major_minor(kubernetes_validate.latest_version()))

# Top-level config sections the deploy examples use that gateway/config/schema.py is still
# gaining (admin listener, Redis state, NATS bus). While the schema lacks one, it is left
# out before our loader validates the rest; once the schema has it, it is validated too, so
# a renamed key fails here and the examples must follow.
PENDING_SECTIONS = ("admin", "state", "bus")

GATEWAY_IMAGE = f"agent-gateway:{__version__}"
CONFIG_DIR = "/etc/agent-gateway"
# After drain_timeout: a second for the calls still running to be answered, one for the process to exit.
EXIT_MARGIN = 2
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}")


# --- loading -------------------------------------------------------------------------------


def _objects() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                out.append((path.name, doc))
    return out


OBJECTS = _objects()


def _id(entry: tuple[str, dict[str, Any]]) -> str:
    file, obj = entry
    return f"{file}:{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def _of_kind(kind: str, file: str | None = None) -> list[dict[str, Any]]:
    return [obj for f, obj in OBJECTS if obj["kind"] == kind and file in (None, f)]


def _pod_containers(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Regular containers and native sidecars (restartable init containers): both serve ports."""
    sidecars = [c for c in pod_spec.get("initContainers", []) if c.get("restartPolicy") == "Always"]
    return [*pod_spec.get("containers", []), *sidecars]


def _gateway_containers() -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(file, deployment, container) for every container running the gateway image."""
    for file, obj in OBJECTS:
        if obj["kind"] != "Deployment":
            continue
        for container in _pod_containers(obj["spec"]["template"]["spec"]):
            if container["image"].split(":")[0].endswith("agent-gateway"):
                yield file, obj, container


def _port(address: str) -> int:
    return int(address.rpartition(":")[2])


def _strings(data: Any) -> Iterator[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def load_gateway_config(text: str, file: str, environ: Mapping[str, str]) -> GatewayConfig:
    """Validate with our loader, leaving out only the sections the schema does not have yet.

    Every ${VAR} in the whole text, pending sections included, must be set or defaulted."""
    data = yaml.safe_load(text)
    refs = [m for value in _strings(data) for m in _ENV_REF.finditer(value)]
    unset = [m.group(1) for m in refs if m.group(2) is None and m.group(1) not in environ]
    assert not unset, f"{file}: ${{{unset[0]}}} is used but its environment does not set it"
    pending = [key for key in PENDING_SECTIONS if key in data and key not in GatewayConfig.model_fields]
    if pending:
        text = yaml.safe_dump({k: v for k, v in data.items() if k not in pending}, sort_keys=False)
    return load_config_text(text, file, environ)


def _container_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _mounted_config(deployment: Mapping[str, Any], container: Mapping[str, Any]) -> tuple[str, str]:
    """(ConfigMap name, gateway.yaml text) mounted at /etc/agent-gateway in this container."""
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"] == CONFIG_DIR]
    assert len(mounts) == 1, f"{container['name']} must mount its config at {CONFIG_DIR}"
    # subPath mounts never see ConfigMap updates, so the gateway could not reload.
    assert "subPath" not in mounts[0], "mount the config directory, not a subPath (subPath never updates)"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    config_map_name = volumes[mounts[0]["name"]]["configMap"]["name"]
    config_maps = {cm["metadata"]["name"]: cm for cm in _of_kind("ConfigMap")}
    return config_map_name, config_maps[config_map_name]["data"]["gateway.yaml"]


# --- Kubernetes schemas ------------------------------------------------------------------------


def test_the_examples_hold_every_kind_an_operator_needs() -> None:
    kinds = {(f, obj["kind"]) for f, obj in OBJECTS}
    assert {("sidecar.yaml", k) for k in ("ConfigMap", "Deployment", "Service")} <= kinds
    assert {("standalone.yaml", k) for k in ("ConfigMap", "Deployment", "Service", "PodDisruptionBudget")} <= kinds


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("entry", OBJECTS, ids=_id)
def test_every_object_matches_the_kubernetes_schema(entry: tuple[str, dict[str, Any]], version: str) -> None:
    _, obj = entry
    # strict: unknown fields (a typo like `readinesProbe`) are errors, as in `kubectl --validate=strict`.
    assert kubernetes_validate.validate(obj, version, strict=True) == version


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    deployment = _of_kind("Deployment", "standalone.yaml")[0]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


# --- the gateway containers ------------------------------------------------------------------


@pytest.mark.parametrize("entry", list(_gateway_containers()), ids=lambda e: f"{e[0]}:{e[1]['metadata']['name']}")
def test_gateway_container_matches_its_config(entry: tuple[str, dict[str, Any], dict[str, Any]]) -> None:
    file, deployment, container = entry
    assert container["image"] == GATEWAY_IMAGE
    assert container["args"] == ["run", "--config", f"{CONFIG_DIR}/gateway.yaml"]
    name, text = _mounted_config(deployment, container)
    config = load_gateway_config(text, f"{file}:ConfigMap/{name}", _container_env(container))
    raw = yaml.safe_load(text)

    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert config.listeners.http is not None and config.listeners.grpc is not None
    assert ports["http"] == _port(config.listeners.http.address)
    assert ports["grpc"] == _port(config.listeners.grpc.address)
    assert ports["admin"] == _port(raw["admin"]["address"])
    # Probes come from the kubelet, not from inside the pod: loopback-only listeners fail them.
    for address in (config.listeners.http.address, config.listeners.grpc.address, raw["admin"]["address"]):
        assert address.startswith("0.0.0.0:"), f"{address} is not reachable from outside the container"

    probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
    assert probes["livenessProbe"] == {"path": "/livez", "port": "admin"}
    assert probes["readinessProbe"] == {"path": "/readyz", "port": "admin"}
    if "startupProbe" in container:
        assert container["startupProbe"]["httpGet"]["port"] in ports

    resources = container["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]
    assert container["securityContext"]["runAsUser"] == 10001  # the image's user
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # A read-only root leaves the mounted volumes as the only place a SQLite state file can go.
    if config.state is not None and config.state.backend == "sqlite":
        writable = [m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")]
        assert any(config.state.sqlite.path.startswith(f"{w}/") for w in writable), (
            f"state goes to SQLite at {config.state.sqlite.path}, on the read-only root: set state.backend"
        )

    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    pre_stop = _pre_stop(container)
    assert pre_stop > 0, "without a preStop pause, calls routed just before SIGTERM are refused"
    # The drain ends within a second of drain_timeout (tests/test_lifecycle.py); SIGKILL must come later.
    budget = _main_containers_pre_stop(deployment) + pre_stop + config.server.drain_timeout + EXIT_MARGIN
    assert grace >= budget, f"terminationGracePeriodSeconds {grace} < {budget}: SIGKILL would cut the drain short"


def _pre_stop(container: Mapping[str, Any]) -> int:
    seconds: int = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    return seconds


def _main_containers_pre_stop(deployment: Mapping[str, Any]) -> int:
    """What a native sidecar waits before its own preStop: main containers stop first."""
    pod = deployment["spec"]["template"]["spec"]
    if not any(c["name"] == "gateway" for c in pod.get("initContainers", [])):
        return 0
    return max(_pre_stop(c) for c in pod["containers"])


def test_sidecar_agent_outlives_the_calls_its_gateway_is_draining() -> None:
    deployment = _of_kind("Deployment", "sidecar.yaml")[0]
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = [c for c in pod["initContainers"] if c["name"] == "gateway"]
    (agent,) = pod["containers"]
    _, text = _mounted_config(deployment, gateway)
    drain = load_gateway_config(text, "sidecar.yaml", _container_env(gateway)).server.drain_timeout
    # Callers reach the agent through its gateway, which stops only after the agent: the agent
    # waits while endpoints drop the pod and the calls already inside the gateway finish.
    assert _pre_stop(agent) >= _pre_stop(gateway) + drain, "the agent would stop under calls in flight"


def test_sidecar_gateway_starts_before_the_agent_and_stops_after_it() -> None:
    pod = _of_kind("Deployment", "sidecar.yaml")[0]["spec"]["template"]["spec"]
    (gateway,) = [c for c in pod["initContainers"] if c["name"] == "gateway"]
    assert gateway["restartPolicy"] == "Always"
    assert "startupProbe" in gateway, "without one the agent may start before the gateway listens"
    (agent,) = pod["containers"]
    grpc_port = {p["name"]: p["containerPort"] for p in gateway["ports"]}["grpc"]
    assert _container_env(agent)["AGENT_GATEWAY_GRPC"] == f"127.0.0.1:{grpc_port}"


def test_sidecar_config_routes_to_the_agent_in_its_pod() -> None:
    deployment = _of_kind("Deployment", "sidecar.yaml")[0]
    pod = deployment["spec"]["template"]["spec"]
    (gateway,) = [c for c in pod["initContainers"] if c["name"] == "gateway"]
    _, text = _mounted_config(deployment, gateway)
    config = load_gateway_config(text, "sidecar.yaml", _container_env(gateway))
    agent_ports = {p["containerPort"] for c in pod["containers"] for p in c.get("ports", [])}
    local = [a for a in config.agents.values() if "127.0.0.1" in a.endpoint]
    assert local, "the sidecar config has no agent on localhost"
    assert all(_port(a.endpoint) in agent_ports for a in local)


# --- Services, PDB, checksum -----------------------------------------------------------------


@pytest.mark.parametrize("entry", [e for e in OBJECTS if e[1]["kind"] == "Service"], ids=_id)
def test_service_targets_named_ports_of_the_pods_it_selects(entry: tuple[str, dict[str, Any]]) -> None:
    file, service = entry
    selector = service["spec"]["selector"]
    pods = [
        d["spec"]["template"]
        for d in _of_kind("Deployment", file)
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert pods, f"Service {service['metadata']['name']} selects no pod"
    for pod in pods:
        named = {p["name"]: p["containerPort"] for c in _pod_containers(pod["spec"]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in named, f"targetPort {port['targetPort']} is no container port"
            assert port["port"] == named[port["targetPort"]]
    assert {p["port"] for p in service["spec"]["ports"]} == {50051, 8080}


def test_disruption_budget_leaves_room_to_drain_a_node() -> None:
    (pdb,) = _of_kind("PodDisruptionBudget")
    (deployment,) = _of_kind("Deployment", "standalone.yaml")
    assert pdb["spec"]["selector"] == deployment["spec"]["selector"]
    assert 0 < pdb["spec"]["minAvailable"] < deployment["spec"]["replicas"]


def test_config_checksum_annotation_matches_the_config_map() -> None:
    (deployment,) = _of_kind("Deployment", "standalone.yaml")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    _, text = _mounted_config(deployment, container)
    expected = hashlib.sha256(text.encode()).hexdigest()
    annotation = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert annotation == expected, f"set checksum/config to {expected} in standalone.yaml"


def test_pending_sections_are_only_skipped_while_the_schema_lacks_them() -> None:
    text = "listeners: {http: null, grpc: null}\nadmin: {address: '0.0.0.0:9901'}\n"
    if "admin" in GatewayConfig.model_fields:
        assert load_gateway_config(text, "t.yaml", {}).listeners.http is None
    else:
        with pytest.raises(ConfigError, match="admin: unknown key"):
            load_config_text(text, "t.yaml", {})
        assert load_gateway_config(text, "t.yaml", {}).listeners.http is None
    with pytest.raises(AssertionError, match="MISSING"):
        load_gateway_config("state: {redis: {url: '${MISSING}'}}\n", "t.yaml", {})


# --- compose -----------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return loaded


def test_compose_gateway_config_validates_with_the_services_environment() -> None:
    services = _compose()["services"]
    gateway = services["gateway"]
    assert gateway["image"] == GATEWAY_IMAGE
    assert gateway["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    # The directory is mounted, so an edit replaces the file the gateway watches.
    assert f"./compose:{CONFIG_DIR}:ro" in gateway["volumes"]
    text = (DEPLOY / "compose" / "gateway.yaml").read_text(encoding="utf-8")
    config = load_gateway_config(text, "compose/gateway.yaml", gateway["environment"])
    assert config.telemetry.tracing.otlp_endpoint == "http://jaeger:4317"

    published = {int(p.rpartition(":")[2]) for p in gateway["ports"]}
    assert config.listeners.http is not None and config.listeners.grpc is not None
    assert published == {
        _port(config.listeners.http.address),
        _port(config.listeners.grpc.address),
        _port(yaml.safe_load(text)["admin"]["address"]),
    }
    assert all(p.startswith("127.0.0.1:") for p in gateway["ports"]), "publish on the host's loopback only"


def test_compose_agents_are_services_listening_where_the_config_points() -> None:
    services = _compose()["services"]
    config = load_gateway_config(
        (DEPLOY / "compose" / "gateway.yaml").read_text(encoding="utf-8"),
        "gateway.yaml",
        services["gateway"]["environment"],
    )
    for name, agent in config.agents.items():
        host_port = agent.endpoint.split("://")[-1]
        host, port = host_port.rsplit(":", 1)
        assert host in services, f"agent {name} points at {host}, which is no compose service"
        command = [*services[host].get("entrypoint", []), *services[host].get("command", [])]
        assert port in " ".join(command), f"service {host} does not listen on {port}"
    for example in ("echo_agent", "grpc_echo_agent"):
        assert (ROOT / "examples" / f"{example}.py").is_file()
        assert any(f"examples.{example}" in s.get("entrypoint", []) for s in services.values())
    assert "-js" in services["nats"]["command"]
    assert services["langgraph"]["profiles"] == ["langgraph"]


# --- image -------------------------------------------------------------------------------------


def _dockerfile() -> str:
    return DOCKERFILE.read_text(encoding="utf-8")


def test_image_base_is_pinned_by_tag_and_digest() -> None:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", _dockerfile(), re.M)
    assert match is not None
    assert re.fullmatch(r"python:3\.11-slim-bookworm@sha256:[0-9a-f]{64}", match.group(1))
    assert re.findall(r"^FROM (\S+)", _dockerfile(), re.M) == ["${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]


def test_image_runs_as_non_root_and_probes_the_admin_port() -> None:
    dockerfile = _dockerfile()
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    config_text = (DEPLOY / "image" / "gateway.yaml").read_text(encoding="utf-8")
    config = load_gateway_config(config_text, "image/gateway.yaml", {})
    admin_port = _port(yaml.safe_load(config_text)["admin"]["address"])
    assert f"AGW_HEALTH_URL=http://127.0.0.1:{admin_port}/readyz" in dockerfile
    assert "HEALTHCHECK" in dockerfile
    assert config.listeners.http is not None and config.listeners.grpc is not None
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", dockerfile, re.M).group(1).split()}  # type: ignore[union-attr]
    assert exposed == {_port(config.listeners.http.address), _port(config.listeners.grpc.address), admin_port}
    assert f"COPY deploy/image/gateway.yaml {CONFIG_DIR}/gateway.yaml" in dockerfile
    assert 'CMD ["run", "--config", "/etc/agent-gateway/gateway.yaml"]' in dockerfile


def test_dockerignore_lets_in_everything_the_image_copies() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    sources = [
        source
        for line in _dockerfile().splitlines()
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert "gateway" in sources
    for source in sources:
        assert source in allowed, f"the image COPYs {source}, which .dockerignore keeps out"
        assert (ROOT / source).exists(), source


def test_image_lock_pins_every_runtime_dependency() -> None:
    # The newest 3.11 (the pinned base's); tests/deploy/test_image.py checks the built image's own.
    image_env = {
        "sys_platform": "linux",
        "platform_python_implementation": "CPython",
        "python_version": "3.11",
        "python_full_version": "3.11.14",
        "extra": "",
    }
    pins = {}
    for line in (DEPLOY / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            pin = Requirement(line)
            if pin.marker is None or pin.marker.evaluate(image_env):
                pins[canonicalize_name(pin.name)] = str(pin.specifier).removeprefix("==")
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    for spec in dependencies:
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate(image_env):
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is missing from deploy/requirements.lock: run `make image-lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"deploy/requirements.lock pins {name}=={pins[name]}, outside {requirement.specifier}: run `make image-lock`"
        )
