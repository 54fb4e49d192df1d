"""Writes the trained synthesiser as a model folder: model.onnx, model.json, reverb.npy."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from services.generate.audio.controls import FRAME_RATE_HZ, HOP, LOUDNESS_FLOOR_DB, SAMPLE_RATE_HZ
from training.audio.data import SOUNDFONT, dataset
from training.audio.envelope import fit_envelopes
from training.audio.instruments import INSTRUMENTS
from training.audio.model import Decoder

logger = logging.getLogger(__name__)

NAME = "cadenza-ddsp"
VERSION = "1"
INPUT_NAMES = ("f0_hz", "loudness_db", "timbre")
OUTPUT_NAMES = ("amplitudes", "noise")
DYNAMIC_AXES = {"f0_hz": {0: "batch", 1: "frames"}, "loudness_db": {0: "batch", 1: "frames"},
                "timbre": {0: "batch"}, "amplitudes": {0: "batch", 1: "frames"},
                "noise": {0: "batch", 1: "frames"}}
OPSET = 17


def load_run(checkpoint: Path) -> tuple[Decoder, dict[str, Any]]:
    """The best decoder saved by training and its run record."""
    saved = torch.load(checkpoint, weights_only=False)
    model = Decoder(len(INSTRUMENTS))
    model.load_state_dict(saved["state"])
    model.eval()
    run = {"history": saved["history"], "best_step": saved["step"],
           "best_valid_loss": saved["best_valid_loss"], "training_time_s": saved["elapsed_s"],
           "seed": saved["seed"], "settings": saved["settings"],
           "train_lines": saved["train_lines"], "validation_lines": saved["validation_lines"]}
    return model, run


def export_onnx(model: Decoder, path: Path) -> None:
    """The frame-rate network as ONNX; onnxruntime must match torch within 1e-4."""
    import onnxruntime as ort

    generator = torch.Generator().manual_seed(0)
    f0 = 100.0 + 600.0 * torch.rand((2, 37), generator=generator)
    loud = -90.0 + 70.0 * torch.rand((2, 37), generator=generator)
    timbre = model.instruments.weight[:2].detach()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (f0, loud, timbre), str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), dynamic_axes=DYNAMIC_AXES,
                          opset_version=OPSET, dynamo=False)
        expected = model(f0, loud, timbre)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(list(OUTPUT_NAMES), {"f0_hz": f0.numpy(), "loudness_db": loud.numpy(),
                                          "timbre": timbre.numpy()})
    for name, want, have in zip(OUTPUT_NAMES, expected, got, strict=True):
        error = float(np.abs(want.numpy() - have).max())
        if error > 1e-4:
            raise AssertionError(f"onnxruntime {name} differs from torch by {error}")


def export_model(model: Decoder, run: dict[str, Any], out: Path) -> None:
    """model.onnx, reverb.npy and model.json (instruments, envelopes, card) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    export_onnx(model, out / "model.onnx")
    np.save(out / "reverb.npy", model.room().detach().numpy().astype(np.float32))
    envelopes = fit_envelopes(dataset()["train"])
    embeddings = model.instruments.weight.detach().numpy()
    parameters = sum(p.numel() for p in model.parameters())
    data = {
        "name": NAME, "version": VERSION, "modality": "audio",
        "inputs": list(INPUT_NAMES), "outputs": list(OUTPUT_NAMES),
        "sample_rate_hz": SAMPLE_RATE_HZ, "hop": HOP, "frame_rate_hz": FRAME_RATE_HZ,
        "n_harmonics": model.n_harmonics, "n_noise_bands": model.n_noise_bands,
        "loudness_floor_db": LOUDNESS_FLOOR_DB, "reverb": "reverb.npy",
        "instruments": [{"name": x.name, "program": x.program, "low": x.low, "high": x.high,
                         "embedding": [round(float(v), 6) for v in embeddings[i]],
                         "envelope": envelopes[x.name]}
                        for i, x in enumerate(INSTRUMENTS)],
        "card": {
            "description": ("DDSP harmonic-plus-filtered-noise synthesiser with a learned "
                            "reverb: a GRU decoder maps f0, A-weighted loudness and an "
                            "instrument embedding to 64 harmonic amplitudes and 65 noise "
                            "bands at 125 frames a second; 16 kHz mono output."),
            "training_data": (f"Bach chorale voices from the music21 corpus rendered by "
                              f"FluidSynth with {SOUNDFONT.name} (Debian fluid-soundfont-gm), "
                              f"{run['train_lines']} training lines, split by piece"),
            "representation": "f0 (Hz) + loudness (dB) + timbre embedding per 8 ms frame",
            "licence": ("weights: ours; soundfont FluidR3 GM: MIT; music21 corpus "
                        "chorales: public domain scores (music21 BSD-3 corpus)"),
            "parameters": parameters,
            "training_time_s": round(float(run["training_time_s"]), 1),
            "metrics": {"valid_spectral_loss": round(float(run["best_valid_loss"]), 4)},
            "best_step": run["best_step"], "seed": run["seed"], "settings": run["settings"],
            "history": run["history"],
        },
    }
    (out / "model.json").write_text(json.dumps(data, indent=1) + "\n")
