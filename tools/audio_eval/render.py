"""Our renders for the eval: the model folder's ONNX network, then the served numpy DSP.

The eval calls onnxruntime itself rather than the generate service so that it measures
the model and the DSP, not the transport; the steps are the ones serving takes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from services.generate.audio.controls import HOP
from services.generate.audio.dsp import synthesise

Floats = npt.NDArray[np.float32]


class NeuralSynth:
    """cadenza-ddsp loaded from its folder: model.onnx, reverb.npy, model.json."""

    def __init__(self, folder: Path, *, threads: int = 2) -> None:
        self.card: dict[str, Any] = json.loads((folder / "model.json").read_text())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(folder / "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.impulse_response = np.load(folder / self.card["reverb"]).astype(np.float32)
        self.instruments: list[dict[str, Any]] = self.card["instruments"]
        self.names = [x["name"] for x in self.instruments]
        self.embeddings = np.asarray([x["embedding"] for x in self.instruments], np.float32)

    def timbre(self, weights: dict[str, float]) -> Floats:
        """The embedding of a mix of instruments: weights (normalised) times embeddings."""
        total = sum(weights.values())
        mix = np.zeros(self.embeddings.shape[1], np.float32)
        for name, weight in weights.items():
            mix += self.embeddings[self.names.index(name)] * np.float32(weight / total)
        return mix

    def frames(self, f0_hz: Floats, control_db: Floats, timbre: Floats) -> tuple[Floats, Floats]:
        """The network's harmonic amplitudes [T, H] and noise magnitudes [T, N]."""
        amplitudes, noise = self.session.run(["amplitudes", "noise"], {
            "f0_hz": f0_hz[None].astype(np.float32),
            "loudness_db": control_db[None].astype(np.float32),
            "timbre": timbre[None].astype(np.float32)})
        return np.asarray(amplitudes[0], np.float32), np.asarray(noise[0], np.float32)

    def render(self, f0_hz: Floats, control_db: Floats, timbre: Floats, seed: int = 0) -> Floats:
        """len(f0_hz) * HOP samples: the reverb's tail past the controls' end is cut off."""
        amplitudes, noise = self.frames(f0_hz, control_db, timbre)
        audio = synthesise(f0_hz.astype(np.float32), amplitudes, noise, self.impulse_response,
                           seed)
        return audio[: f0_hz.size * HOP]
