"""The Triton dev server (PyTriton, in .venv-triton) as a child process, for tests and bench."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import time

import tritonclient.grpc as triton_sync

from tools.devmesh import free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
TRITON_PYTHON = ROOT / ".venv-triton" / "bin" / "python"
START_TIMEOUT_S = 90


class DevServer:
    """python -m tools.triton_dev_server in its own process group."""

    def __init__(self, model_dir: pathlib.Path, workspace: pathlib.Path) -> None:
        self.grpc_port = free_port()
        self.log_path = workspace.parent / f"triton-{self.grpc_port}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(TRITON_PYTHON), "-m", "tools.triton_dev_server",
             "--model-dir", str(model_dir), "--grpc-port", str(self.grpc_port),
             "--http-port", str(free_port()), "--workspace", str(workspace)],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        self.url = f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, model_name: str) -> None:
        client = triton_sync.InferenceServerClient(self.url)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"triton dev server exited:\n{self.log_path.read_text()}")
                try:
                    if client.is_model_ready(model_name):
                        return
                except Exception:  # not listening yet
                    pass
                time.sleep(0.2)
            raise TimeoutError(f"{model_name} not ready in {START_TIMEOUT_S} s:\n"
                               f"{self.log_path.read_text()}")
        finally:
            client.close()

    def signal_group(self, signum: int) -> None:
        os.killpg(self.process.pid, signum)  # tritonserver and its Python stubs too

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait(timeout=10)
        try:
            self.signal_group(signal.SIGKILL)  # anything the wrapper left behind
        except ProcessLookupError:
            pass
        self._log.close()

    @classmethod
    def start(cls, model_dir: pathlib.Path, model_name: str,
              workspace: pathlib.Path) -> DevServer:
        """A server with `model_name` ready, or an exception with the server's log."""
        server = cls(model_dir, workspace)
        try:
            server.wait_ready(model_name)
        except BaseException:
            server.stop()
            raise
        return server
