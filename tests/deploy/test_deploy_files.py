"""deploy/ without a Docker engine: the files parse, and every command, variable, port, path and
mount in them is one eventcore (or the named third-party software) really has."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from tests.deploy.support import (
    API_PORT,
    DEPLOY,
    DOCUMENTED_ELSEWHERE,
    README,
    ROOT,
    WORKER_METRICS_PORT,
    eventcore_command,
    interpolate,
    load_yaml,
    load_yaml_documents,
    route_paths,
    settings_variables,
)

from eventcore.entrypoints.settings import Settings, load_settings

COMPOSE = DEPLOY / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
KUBERNETES = DEPLOY / "kubernetes"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "eventcore.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "eventcore.yml"


# Compose


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE)
    return loaded


def eventcore_services() -> dict[str, dict[str, Any]]:
    """The services that run the eventcore image (built from deploy/Dockerfile)."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").startswith("eventcore")
    }


def image_of(service: dict[str, Any]) -> str:
    image: str = service["image"]
    return image.split(":")[0]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of files from deploy/: container path -> host path."""
    bound: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            bound[target] = (DEPLOY / source).resolve()
    return bound


def test_compose_runs_the_whole_stack() -> None:
    """The Compose file has the servers, a one-shot migrate, the API, workers, Prometheus and
    Grafana, and builds the eventcore image from deploy/Dockerfile in the repository's root."""
    services = compose()["services"]

    assert {"postgres", "redis", "rabbitmq", "migrate", "api", "worker"} <= set(services)
    assert {"prometheus", "grafana"} <= set(services)
    for name, service in eventcore_services().items():
        build = service["build"]
        assert (DEPLOY / build["context"]).resolve() == ROOT, name
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name


def test_every_compose_command_of_eventcore_is_a_real_command() -> None:
    """migrate, serve and worker services run commands the `eventcore` CLI accepts."""
    commands = {
        name: eventcore_command(service["command"], f"compose service {name}")
        for name, service in eventcore_services().items()
    }

    assert commands["migrate"].run.__name__ == "_migrate"
    assert commands["api"].run.__name__ == "_serve"
    assert commands["worker"].run.__name__ == "_worker"
    # Scaled by replicas, each container one process: /metrics then describes one process.
    assert commands["api"].workers == 1


def test_compose_sets_only_variables_their_software_reads() -> None:
    """Each variable set for an eventcore container is a Settings field, and the rest are
    documented variables of the image they are set for; eventcore's values are valid settings."""
    known = settings_variables()
    for name, service in compose()["services"].items():
        variables = set(service.get("environment", {}))
        if name in eventcore_services():
            assert variables <= known, (name, variables - known)
            env = {key: interpolate(value) for key, value in service["environment"].items()}
            settings = load_settings(env)
            assert settings.distributed, name
            assert settings.uses_postgres, name
        else:
            allowed = DOCUMENTED_ELSEWHERE.get(image_of(service), set())
            assert variables <= allowed, (name, variables - allowed)


def test_compose_ports_match_what_eventcore_listens_on() -> None:
    """The API listens on the port Compose publishes, its health check asks and Prometheus
    scrapes; workers serve metrics on the port Prometheus scrapes, on all interfaces."""
    services = compose()["services"]
    api, worker = services["api"], services["worker"]
    serve = eventcore_command(api["command"], "api")
    assert serve.port == API_PORT
    assert serve.host == "0.0.0.0"
    assert [str(p).rsplit(":", 1)[-1] for p in api["ports"]] == [str(API_PORT)]

    health = urlsplit(re.search(r"http://[^'\"]+", " ".join(api["healthcheck"]["test"]))[0])
    assert health.port == API_PORT
    assert health.path in route_paths()

    env = load_settings({k: interpolate(v) for k, v in worker["environment"].items()})
    assert env.worker_metrics_port == WORKER_METRICS_PORT
    assert env.worker_metrics_host == "0.0.0.0"
    assert [str(port) for port in worker["expose"]] == [str(WORKER_METRICS_PORT)]

    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS)["scrape_configs"]}
    assert jobs["eventcore-api"]["dns_sd_configs"] == [
        {"names": ["api"], "type": "A", "port": API_PORT, "refresh_interval": "15s"}
    ]
    assert jobs["eventcore-worker"]["dns_sd_configs"][0]["names"] == ["worker"]
    assert jobs["eventcore-worker"]["dns_sd_configs"][0]["port"] == WORKER_METRICS_PORT
    assert {job["metrics_path"] for job in jobs.values()} == {"/metrics"}
    assert "/metrics" in route_paths()


def test_compose_start_order_runs_migrate_once_before_the_api_and_workers() -> None:
    """migrate runs once (no restart) after PostgreSQL is healthy; the API and workers wait for it
    to complete; every service depended on exists."""
    services = compose()["services"]

    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {
            "condition": "service_completed_successfully"
        }
    for name, service in services.items():
        assert set(service.get("depends_on", [])) <= set(services), name


def test_prometheus_and_grafana_are_provisioned_from_files_that_exist() -> None:
    """Prometheus loads its config and the alert rules from deploy/; Grafana gets a Prometheus
    data source pointing at the prometheus service and the dashboard directory."""
    services = compose()["services"]
    prometheus, grafana = mounts(services["prometheus"]), mounts(services["grafana"])

    config_path = "/etc/prometheus/prometheus.yml"
    assert prometheus[config_path] == PROMETHEUS
    assert f"--config.file={config_path}" in services["prometheus"]["command"]
    assert load_yaml(PROMETHEUS)["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert prometheus["/etc/prometheus/alerts.yml"] == ALERTS
    assert grafana["/etc/grafana/provisioning"] == DATASOURCES.parent.parent
    dashboards_dir = load_yaml(DASHBOARD_PROVIDERS)["providers"][0]["options"]["path"]
    assert grafana[dashboards_dir] == DASHBOARD.parent
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"

    (source,) = load_yaml(DATASOURCES)["datasources"]
    url = urlsplit(source["url"])
    assert url.hostname == "prometheus"
    assert f"{url.port}:{url.port}" in services["prometheus"]["ports"]
    dashboard = json.loads(DASHBOARD.read_text())
    used = {panel["datasource"]["uid"] for panel in dashboard["panels"]}
    assert used == {source["uid"]}


def test_the_dashboard_shows_what_an_operator_watches() -> None:
    """Panels for ingest rate, latency percentiles, queue depth, duplicates, errors and the DLQ,
    each with at least one query."""
    dashboard = json.loads(DASHBOARD.read_text())
    titles = {panel["title"] for panel in dashboard["panels"]}

    for wanted in (
        "Ingest rate",
        "Ingest latency",
        "Queue depth",
        "Duplicates",
        "Errors",
        "Dead-letter queue",
    ):
        assert wanted in titles
    for panel in dashboard["panels"]:
        assert panel["targets"]
        assert all(target["expr"] for target in panel["targets"])
    latency = next(p for p in dashboard["panels"] if p["title"] == "Ingest latency")
    assert [t["legendFormat"] for t in latency["targets"]] == ["p50", "p95", "p99"]


def test_alert_rules_cover_backlog_dead_letters_and_errors() -> None:
    """The shipped rules file alerts on a growing queue, a non-empty dead-letter queue and the
    API's error rate, and the README describes each rule."""
    groups = load_yaml(ALERTS)["groups"]
    rules = {rule["alert"]: rule for group in groups for rule in group["rules"]}

    assert {"EventcoreQueueGrowing", "EventcoreDeadLetters", "EventcoreHighErrorRate"} <= set(rules)
    assert 'queue="dead_letter"' in rules["EventcoreDeadLetters"]["expr"]
    assert 'status_code=~"5.."' in rules["EventcoreHighErrorRate"]["expr"]
    for name, rule in rules.items():
        assert rule["expr"].strip()
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert name in README, f"the README does not describe alert {name}"


# Dockerfile


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_dockerfile_stages_are_consistent() -> None:
    """Two stages: `build` makes wheels from files that exist, `runtime` copies only from
    `build`, runs as a non-root user, exposes the API and worker-metrics ports, and its
    entrypoint and command are a real `eventcore serve` on the exposed API port."""
    stages: list[str] = []
    copied_from: list[str] = []
    sources: list[str] = []
    final: dict[str, Any] = {}
    for keyword, rest in dockerfile_instructions():
        if keyword == "FROM":
            match = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", rest, flags=re.I)
            assert match, rest
            stages.append(match[2])
        elif keyword == "COPY":
            parts = rest.split()
            if parts[0].startswith("--from="):
                stage = parts[0].removeprefix("--from=")
                assert stage in stages[:-1], f"COPY --from={stage} names no earlier stage"
                copied_from.append(stage)
            else:
                sources += parts[:-1]
        elif keyword in {"ENTRYPOINT", "CMD"}:
            final[keyword] = json.loads(rest)
        elif keyword in {"EXPOSE", "USER", "ENV"}:
            final[keyword] = rest

    assert stages == ["build", "runtime"]
    assert copied_from == ["build"]
    for source in sources:
        assert (ROOT / source).exists(), source
    # The wheel is built from what was copied: the build's own hook must be among it.
    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]
    assert build["targets"]["wheel"]["hooks"]["custom"]["path"] in sources
    assert final["USER"] not in {"0", "root"}
    assert final["ENTRYPOINT"] == ["eventcore"]
    serve = eventcore_command(final["CMD"], "Dockerfile CMD")
    assert serve.run.__name__ == "_serve"
    assert {int(port) for port in final["EXPOSE"].split()} == {serve.port, WORKER_METRICS_PORT}
    assert Settings().worker_metrics_port == WORKER_METRICS_PORT
    variables = set(re.findall(r"([A-Z_][A-Z0-9_]*)=", final["ENV"]))
    assert variables <= settings_variables() | DOCUMENTED_ELSEWHERE["python"], variables


def test_dockerignore_lets_in_what_the_build_copies() -> None:
    """The build context's ignore file excludes everything but the files the build copies from
    the context (every COPY without --from), and lets each of those in."""
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    ignore = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert ignore[0] == "**"
    copied: set[str] = set()
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources = [w for w in words[1:-1] if not w.startswith("--")]
            copied |= {source.rstrip("/") for source in sources}
    assert copied >= {"pyproject.toml", "README.md", "src"}
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert copied <= allowed, copied - allowed


# Kubernetes


def manifests() -> list[dict[str, Any]]:
    kustomization = load_yaml(KUBERNETES / "kustomization.yaml")
    documents: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        path = KUBERNETES / resource
        assert path.is_file(), resource
        documents += load_yaml_documents(path)
    return documents


def of_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in manifests() if doc["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return found


def test_kubernetes_has_the_scale_out_pieces() -> None:
    """Deployments, Services and HPAs for the API and workers, a migrate Job, a ConfigMap and a
    Secret; every kustomization resource exists and parses."""
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in manifests()}

    assert {
        ("Deployment", "eventcore-api"),
        ("Deployment", "eventcore-worker"),
        ("Service", "eventcore-api"),
        ("Service", "eventcore-worker-metrics"),
        ("HorizontalPodAutoscaler", "eventcore-api"),
        ("HorizontalPodAutoscaler", "eventcore-worker"),
        ("Job", "eventcore-migrate"),
        ("ConfigMap", "eventcore-config"),
        ("Secret", "eventcore-secrets"),
    } <= kinds


def test_kubernetes_containers_run_real_commands_with_real_settings() -> None:
    """Each container runs an `eventcore` command, takes its environment from the ConfigMap and
    Secret, whose every key is a Settings field and whose values together are valid settings."""
    config = of_kind("ConfigMap")["eventcore-config"]["data"]
    secret = of_kind("Secret")["eventcore-secrets"]["stringData"]
    image = load_yaml(KUBERNETES / "kustomization.yaml")["images"][0]["name"]

    assert set(config) | set(secret) <= settings_variables()
    settings = load_settings({**config, **secret})
    assert settings.distributed
    assert settings.uses_postgres
    commands = {}
    for kind in ("Deployment", "Job"):
        for name, workload in of_kind(kind).items():
            (container,) = containers(workload)
            assert container["image"] == image, name
            commands[name] = eventcore_command(container["args"], name)
            sources = {
                next(iter(ref.values()))["name"] for ref in container["envFrom"]
            }  # {"configMapRef": {"name": ...}} and {"secretRef": {"name": ...}}
            assert sources == {"eventcore-config", "eventcore-secrets"}, name
            assert not container.get("env"), name
    assert commands["eventcore-migrate"].run.__name__ == "_migrate"
    assert commands["eventcore-api"].run.__name__ == "_serve"
    assert commands["eventcore-worker"].run.__name__ == "_worker"


def test_kubernetes_ports_probes_and_selectors_match() -> None:
    """Container ports are the ones eventcore listens on, probes ask real routes on named ports,
    Prometheus annotations name those ports, and Services and HPAs select existing workloads."""
    deployments = of_kind("Deployment")
    config = of_kind("ConfigMap")["eventcore-config"]["data"]
    api = deployments["eventcore-api"]
    (api_container,) = containers(api)
    serve = eventcore_command(api_container["args"], "api")
    api_ports = {p["name"]: p["containerPort"] for p in api_container["ports"]}
    assert api_ports == {"http": serve.port}
    (worker_container,) = containers(deployments["eventcore-worker"])
    worker_ports = {p["name"]: p["containerPort"] for p in worker_container["ports"]}
    assert worker_ports == {"metrics": int(config["EVENTCORE_WORKER_METRICS_PORT"])}
    assert config["EVENTCORE_WORKER_METRICS_HOST"] == "0.0.0.0"

    for name, workload in deployments.items():
        template = workload["spec"]["template"]
        labels = template["metadata"]["labels"]
        assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        (container,) = containers(workload)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        annotations = template["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) in ports.values(), name
        assert annotations["prometheus.io/path"] in route_paths() | {"/metrics"}
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in container:
                get = container[probe]["httpGet"]
                assert get["port"] in ports, (name, probe)
                assert get["path"] in route_paths() or get["path"] == "/metrics", (name, probe)

    for name, service in of_kind("Service").items():
        selected = [
            workload
            for workload in deployments.values()
            if service["spec"]["selector"].items()
            <= workload["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(selected) == 1, name
        (container,) = containers(selected[0])
        names = {p["name"] for p in container["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= names, name

    for name, hpa in of_kind("HorizontalPodAutoscaler").items():
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment", name
        assert target["name"] in deployments, name
    metrics = of_kind("HorizontalPodAutoscaler")["eventcore-api"]["spec"]["metrics"]
    assert metrics[0]["resource"]["name"] == "cpu"
    (queue,) = of_kind("HorizontalPodAutoscaler")["eventcore-worker"]["spec"]["metrics"]
    assert queue["type"] == "External"
    assert queue["external"]["metric"]["selector"]["matchLabels"] == {"queue": "main"}


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.y*ml")), ids=lambda p: p.name)
def test_every_yaml_file_in_deploy_parses(path: Path) -> None:
    """Every YAML file under deploy/ is valid YAML with at least one document."""
    assert load_yaml_documents(path)


def test_the_rabbitmq_cluster_profile_is_three_nodes_of_one_cluster() -> None:
    """The `rabbitmq-cluster` profile: three nodes with one cookie and their own data, each
    named in the peer-discovery file they all mount; the node URLs the Compose file's comment
    gives are a setting eventcore takes, naming each node once."""
    services = compose()["services"]
    nodes = {name: s for name, s in services.items() if "rabbitmq-cluster" in s.get("profiles", [])}
    assert sorted(nodes) == ["rabbitmq-1", "rabbitmq-2", "rabbitmq-3"]
    cookies = {interpolate(s["environment"]["RABBITMQ_ERLANG_COOKIE"]) for s in nodes.values()}
    assert len(cookies) == 1
    assert len({s["volumes"][1].split(":")[0] for s in nodes.values()}) == 3
    for name, node in nodes.items():
        assert node["hostname"] == name
        discovery = mounts(node)["/etc/rabbitmq/conf.d/20-cluster.conf"]
        assert f"= rabbit@{name}\n" in discovery.read_text()
    url = re.search(r"EVENTCORE_AMQP_URL=(\S+)", (DEPLOY / "docker-compose.yml").read_text())
    assert url is not None
    settings = load_settings(
        {
            "EVENTCORE_AMQP_URL": url[1],
            "EVENTCORE_DATABASE_URL": "postgresql://eventcore@postgres/eventcore",
        }
    )
    hosts = [urlsplit(node).hostname for node in settings.amqp_url.split(",")]
    assert hosts == sorted(nodes)
