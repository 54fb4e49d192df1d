"""A real Triton server (PyTriton) serving a model folder's model.onnx, for tests and bench.

The tritonserver that the nvidia-pytriton wheel bundles has only the Python backend, not
the onnxruntime one that deploy/triton/model_repository asks for ("unable to find backend
library for backend 'onnxruntime'"). So this binds a Python callable that runs the same
model.onnx with onnxruntime, under the same model name, inputs, outputs, max batch size and
dynamic batcher as the committed config.pbtxt (both come from
services/generate/inference/triton_repo.py).

Runs in .venv-triton (PyTriton pins numpy<2), so it imports numpy, onnxruntime, pytriton,
the standard library and the standard-library-only triton_repo module; never cadenza. From
the repository root (so `python -m` finds that module):

    .venv-triton/bin/python -m tools.triton_dev_server \
        --model-dir models/generate/cadenza-poly --grpc-port 8001 --http-port 8000 \
        --workspace .run/triton
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import signal
import sysconfig
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pytriton.decorators import batch
from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
from pytriton.triton import (
    DEFAULT_PROTECTED_ENDPOINTS,
    Triton,
    TritonConfig,
    TritonSecurityConfig,
)

from services.generate.inference.triton_repo import (
    MAX_BATCH_SIZE,
    MAX_QUEUE_DELAY_US,
    TensorSpec,
    contract_tensors,
)

logger = logging.getLogger("triton_dev_server")

NUMPY_TYPES = {"TYPE_INT64": np.int64, "TYPE_FP32": np.float32}


def _tensors(declared: list[TensorSpec]) -> list[Tensor]:
    return [Tensor(name=name, dtype=NUMPY_TYPES[data_type], shape=tuple(dims))
            for name, data_type, dims in declared]


def _infer_function(session: ort.InferenceSession, output_names: list[str]) -> Any:
    @batch  # type: ignore[untyped-decorator]  # pytriton is untyped
    def infer(**inputs: npt.NDArray[Any]) -> dict[str, npt.NDArray[Any]]:
        outputs = session.run(output_names, inputs)
        return dict(zip(output_names, outputs, strict=True))

    return infer


def _stop_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)  # unwinds `with Triton(...)`, which stops tritonserver cleanly


def main() -> None:
    """Serves one model folder with PyTriton until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=pathlib.Path, required=True)
    parser.add_argument("--grpc-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--workspace", type=pathlib.Path, required=True,
                        help="PyTriton's model store and sockets (removed on exit)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    # The Python backend stub must load this interpreter's libpython, not the system one.
    libdir = sysconfig.get_config_var("LIBDIR")
    os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (libdir, os.environ.get("LD_LIBRARY_PATH")) if p)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)

    model_json = json.loads((args.model_dir / "model.json").read_text())
    inputs, outputs = contract_tensors(model_json)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    session = ort.InferenceSession(str(args.model_dir / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    config = TritonConfig(grpc_address=args.host, grpc_port=args.grpc_port,
                          http_address=args.host, http_port=args.http_port,
                          allow_metrics=False)
    # Statistics stay open (loopback only) so tests can see the dynamic batcher merge calls.
    security = TritonSecurityConfig(restricted_endpoints=[
        e for e in DEFAULT_PROTECTED_ENDPOINTS if e != "statistics"])
    with Triton(config=config, workspace=args.workspace, security_config=security) as triton:
        triton.bind(model_name=model_json["name"],
                    infer_func=_infer_function(session, [name for name, _, _ in outputs]),
                    inputs=_tensors(inputs), outputs=_tensors(outputs),
                    config=ModelConfig(max_batch_size=MAX_BATCH_SIZE, batcher=DynamicBatcher(
                        max_queue_delay_microseconds=MAX_QUEUE_DELAY_US)),
                    strict=True)
        logger.info("serving %s on %s:%d (gRPC)", model_json["name"], args.host, args.grpc_port)
        triton.serve()


if __name__ == "__main__":
    main()
