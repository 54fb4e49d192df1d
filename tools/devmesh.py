"""Runs the whole mesh on localhost as separate processes: `make up`, tests and benchmarks.

`python -m tools.devmesh up|down|status`. State lives in a run directory (.run/ by
default): one log per process, mesh.json with the endpoints, and tls/ with the local
development CA. The public entry is the edge (Envoy, under its supervisor); the gateway
is its control plane.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = pathlib.Path(__file__).resolve().parent.parent

# name -> (python module, env prefix, default gRPC port, default metrics port)
PROCESSES = {
    "retrieval": ("services.retrieval", "CADENZA_RETRIEVAL_", 50052, 9092),
    "recommend": ("services.recommend", "CADENZA_RECOMMEND_", 50053, 9093),
    "generate": ("services.generate", "CADENZA_GENERATE_", 50054, 9094),
    "gateway": ("gateway", "CADENZA_GATEWAY_", 50051, 9091),
}
# The edge: Envoy under its supervisor. Its "metrics port" is Envoy's admin interface
# (/stats/prometheus). Not a Python gRPC service, so not one of PROCESSES (images,
# manifests and metrics checks are per service).
EDGE = ("gateway.edge", "CADENZA_EDGE_", 8443, 9901)
BACKENDS = ("retrieval", "recommend", "generate")
# The first admin key the gateway makes, for the CLI and tools on this machine.
ADMIN_KEY = "admin.key"


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(address: str, timeout_s: float,
                 check_alive: Callable[[], None] = lambda: None,
                 ca_file: pathlib.Path | None = None, service: str = "") -> None:
    """Polls grpc.health.v1 (service '' by default) at address until SERVING;
    check_alive may raise to give up.

    With ca_file the channel is TLS, trusting that CA.
    """
    deadline = time.monotonic() + timeout_s
    channel = (grpc.secure_channel(address, grpc.ssl_channel_credentials(ca_file.read_bytes()))
               if ca_file else grpc.insecure_channel(address))
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            check_alive()
            try:
                reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{address} not SERVING after {timeout_s:.0f} s")
            time.sleep(0.1)


def wait_edge_healthy(admin_port: int, timeout_s: float,
                      check_alive: Callable[[], None] = lambda: None) -> None:
    """Polls Envoy's admin /clusters until its health checks pass for every backend."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{admin_port}/clusters"
    while True:
        check_alive()
        try:
            lines = urllib.request.urlopen(url, timeout=2).read().decode().splitlines()
            flags = [line.rsplit("::", 1)[1] for line in lines if "::health_flags::" in line
                     and line.split("::")[0] in BACKENDS]
            if len(flags) == len(BACKENDS) and all(f == "healthy" for f in flags):
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"the edge's backends not healthy after {timeout_s:.0f} s")
        time.sleep(0.1)


@dataclass
class Endpoints:
    """Where each process listens (gRPC and metrics ports), where the edge listens
    (public and admin ports) and, once started, every pid."""
    grpc_ports: dict[str, int]
    metrics_ports: dict[str, int]
    edge_port: int = EDGE[2]
    edge_admin_port: int = EDGE[3]
    pids: dict[str, int] = field(default_factory=dict)

    @classmethod
    def defaults(cls) -> Endpoints:
        """The fixed ports `make up` uses."""
        return cls({n: p[2] for n, p in PROCESSES.items()},
                   {n: p[3] for n, p in PROCESSES.items()})

    @classmethod
    def free(cls) -> Endpoints:
        """Free ports for every process (tests run meshes side by side)."""
        return cls({n: free_port() for n in PROCESSES}, {n: free_port() for n in PROCESSES},
                   free_port(), free_port())

    def address(self, name: str) -> str:
        """host:port of a process's gRPC server."""
        return f"127.0.0.1:{self.grpc_ports[name]}"

    @property
    def public(self) -> str:
        """host:port of the public entry (the edge)."""
        return f"127.0.0.1:{self.edge_port}"

    def peer_env(self) -> dict[str, str]:
        """Where the gateway and the edge find the backends, the edge finds the gateway,
        and recommend and generate find retrieval."""
        env = {f"CADENZA_{front}_{backend.upper()}_ADDRESS": self.address(backend)
               for backend in ("retrieval", "recommend", "generate")
               for front in ("GATEWAY", "EDGE")}
        env["CADENZA_EDGE_GATEWAY_ADDRESS"] = self.address("gateway")
        env["CADENZA_RECOMMEND_RETRIEVAL_ADDRESS"] = self.address("retrieval")
        env["CADENZA_GENERATE_RETRIEVAL_ADDRESS"] = self.address("retrieval")
        return env


class Mesh:
    """The five processes, started in dependency order and stopped with SIGTERM.

    With tls the edge serves TLS with a development CA made in run_dir/tls. With keys
    every call needs an API key (the gateway's store; the first admin key is written to
    run_dir/admin.key) and the edge asks the gateway about each call (ext_authz);
    without, the mesh is open and every call is the anonymous tenant's.
    """

    def __init__(self, run_dir: pathlib.Path, endpoints: Endpoints,
                 env: dict[str, str] | None = None,
                 data_dir: pathlib.Path | None = None, tls: bool = False,
                 keys: bool = False) -> None:
        self.run_dir = run_dir
        self.keys = keys
        self.data_dir = data_dir or run_dir / "data"
        self.endpoints = endpoints
        self.extra_env = env or {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ca_file: pathlib.Path | None = None
        if tls:
            from tools.dev_ca import ensure

            certs = ensure(run_dir / "tls")
            self.ca_file = certs.ca
            self.extra_env.update({"CADENZA_EDGE_TLS_CERT_FILE": str(certs.cert),
                                   "CADENZA_EDGE_TLS_KEY_FILE": str(certs.key)})

    def env_for(self, name: str) -> dict[str, str]:
        """The environment a process starts with: its ports, run directory and peers."""
        _, prefix, _, _ = EDGE if name == "edge" else PROCESSES[name]
        ports = ((self.endpoints.edge_port, self.endpoints.edge_admin_port) if name == "edge"
                 else (self.endpoints.grpc_ports[name], self.endpoints.metrics_ports[name]))
        env = dict(os.environ)
        env.update({
            f"{prefix}PORT": str(ports[0]),
            f"{prefix}METRICS_PORT": str(ports[1]),
            f"{prefix}DATA_DIR": str(self.data_dir / name),
            "PYTHONUNBUFFERED": "1",
        })
        # librosa's numba kernels are cached on disk (by default inside the venv, shared by
        # every process). Retrieval and generate both warm them up at start; two processes
        # writing one cache at once left an index and data files from different compiles,
        # and the next process to load them segfaulted in librosa.yin. One cache per
        # service, as each has its own container in production.
        env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba" / name))
        env.update(self.endpoints.peer_env())
        if name == "gateway":
            env.update({"CADENZA_GATEWAY_REQUIRE_KEYS": "1" if self.keys else "0",
                        "CADENZA_GATEWAY_STORE_PATH": str(self.data_dir / "gateway" /
                                                          "gateway.db"),
                        "CADENZA_GATEWAY_BOOTSTRAP_KEY_FILE": str(self.run_dir / ADMIN_KEY)})
        if name == "edge":
            env["CADENZA_EDGE_AUTHZ"] = "1" if self.keys else "0"
        env.update(self.extra_env)
        return env

    @property
    def admin_key(self) -> str:
        """The first admin key the gateway made ("" before it has, or without keys)."""
        path = self.run_dir / ADMIN_KEY
        return path.read_text().strip() if path.exists() else ""

    def start_process(self, name: str) -> subprocess.Popen[bytes]:
        """Starts one process, logging to the run directory."""
        module = EDGE[0] if name == "edge" else PROCESSES[name][0]
        self.run_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.run_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=self.env_for(name),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives `make up`
        )
        log.close()
        self.procs[name] = proc
        self.endpoints.pids[name] = proc.pid
        return proc

    def start(self, timeout_s: float = 120.0) -> None:
        """Starts every process in order and waits until each one serves."""
        for name in (*PROCESSES, "edge"):
            self.start_process(name)
        self.wait_ready(timeout_s)
        (self.run_dir / "mesh.json").write_text(json.dumps(asdict(self.endpoints), indent=1))

    def wait_ready(self, timeout_s: float) -> None:
        """Waits until the gateway's overall health is SERVING (all backends up), and
        then until the edge routes to it."""

        def check_alive() -> None:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}; see "
                                       f"{self.run_dir / (name + '.log')}")

        wait_serving(self.endpoints.address("gateway"), timeout_s, check_alive)
        wait_serving(self.endpoints.public, timeout_s, check_alive, self.ca_file)
        wait_edge_healthy(self.endpoints.edge_admin_port, timeout_s, check_alive)

    def stop(self, timeout_s: float = 30.0) -> dict[str, int | None]:
        """SIGTERM to every process, gateway first; returns their exit codes."""
        for name in reversed(list(self.procs)):
            if self.procs[name].poll() is None:
                self.procs[name].send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, proc in self.procs.items():
            try:
                codes[name] = proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[name] = None
        return codes


def alive(pid: int) -> bool:
    """Whether a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def terminate(pids: Iterable[int], timeout_s: float = 30.0) -> None:
    """SIGTERM to each live pid, then SIGKILL to any still alive after timeout_s."""
    pids = [pid for pid in pids if alive(pid)]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def _load(run_dir: pathlib.Path) -> Endpoints | None:
    path = run_dir / "mesh.json"
    if not path.exists():
        return None
    return Endpoints(**json.loads(path.read_text()))


def _catalog_size(address: str, key: str) -> int:
    from cadenza.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        stats = stub.GetCatalogStats(retrieval_pb2.GetCatalogStatsRequest(), timeout=30,
                                     metadata=(("authorization", f"Bearer {key}"),))
        return int(stats.track_count)


def build_catalog_if_empty(address: str, run_dir: pathlib.Path) -> int:
    """Builds the demo catalog when the catalog is empty (first `make up`), through the
    gateway at address with the mesh's admin key."""
    path = run_dir / ADMIN_KEY
    key = path.read_text().strip() if path.exists() else ""
    if os.environ.get("CADENZA_SKIP_CATALOG") or _catalog_size(address, key) > 0:
        return 0
    print("The catalog is empty: building the demo catalog (one-off, several minutes; "
          "CADENZA_SKIP_CATALOG=1 skips it).")
    # The key travels in the environment, not the command line other users can read.
    return subprocess.call([sys.executable, "-m", "tools.catalog.build", "--target", address],
                           cwd=ROOT, env={**os.environ, "CADENZA_API_KEY": key})


def up(run_dir: pathlib.Path) -> int:
    """Starts the mesh (unless it runs already) and builds the demo catalog if empty."""
    current = _load(run_dir)
    if current and all(alive(pid) for pid in current.pids.values()):
        print(f"mesh already running (pids {sorted(current.pids.values())})")
        return build_catalog_if_empty(current.address("gateway"), run_dir)
    if current:
        down(run_dir)  # a partly dead mesh: start clean
    mesh = Mesh(run_dir, Endpoints.defaults(), data_dir=ROOT / ".data", tls=True, keys=True)
    try:
        mesh.start()
    except (RuntimeError, TimeoutError) as error:
        mesh.stop()
        print(f"mesh failed to start: {error}", file=sys.stderr)
        return 1
    ep = mesh.endpoints
    print("Cadenza is up.")
    print(f"  edge (public)     https://{ep.public}   gRPC, REST/JSON, gRPC-Web; "
          f"CA {mesh.ca_file}")
    print(f"  envoy admin       http://127.0.0.1:{ep.edge_admin_port}/stats/prometheus")
    for name in ("gateway", "retrieval", "recommend", "generate"):
        print(f"  {name:<17} 127.0.0.1:{ep.grpc_ports[name]}   "
              f"metrics http://127.0.0.1:{ep.metrics_ports[name]}/metrics")
    print(f"  logs              {run_dir}/*.log")
    if mesh.admin_key:
        # Shown once: the store keeps only its hash. The CLI reads the file by itself.
        print(f"  first admin key   {mesh.admin_key}   (shown once; kept in "
              f"{run_dir / ADMIN_KEY}, mode 0600)")
    print("Try: .venv/bin/cadenza health")
    print(f"     curl --cacert {mesh.ca_file} -H 'authorization: Bearer '$(cat "
          f"{run_dir / ADMIN_KEY}) https://{ep.public}/v1/models")
    return build_catalog_if_empty(mesh.endpoints.address("gateway"), run_dir)


def down(run_dir: pathlib.Path, timeout_s: float = 30.0) -> int:
    """Stops the mesh: SIGTERM, then SIGKILL past the timeout."""
    current = _load(run_dir)
    if current is None:
        print("mesh not running")
        return 0
    terminate(current.pids.values(), timeout_s)
    (run_dir / "mesh.json").unlink()
    print("mesh stopped")
    return 0


def status(run_dir: pathlib.Path) -> int:
    """Prints each process and whether it serves; 1 when any does not."""
    current = _load(run_dir)
    if current is None:
        print("mesh not running")
        return 1
    for name, pid in current.pids.items():
        state = "running" if alive(pid) else "stopped"
        print(f"  {name:<10} pid {pid:<8} {state:<8} {current.address(name)}")
    return 0


def main() -> None:
    """The `python -m tools.devmesh up|down|status` entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--run-dir", type=pathlib.Path, default=ROOT / ".run")
    args = parser.parse_args()
    sys.exit({"up": up, "down": down, "status": status}[args.action](args.run_dir))


if __name__ == "__main__":
    main()
