"""Neural synthesis speed on ONE core: cadenza-ddsp against FluidSynth, numpy DSP against torch.

- Real-time factor: a 30 s monophonic line (a scale figure, quarter notes at 100 bpm)
  rendered by the served path, ONNX Runtime on model.onnx (one intra-op thread) then the
  numpy DSP (services/generate/audio/dsp.py, BLAS and OpenMP held to one thread by
  threadpoolctl), beside FluidSynth (services/generate/music/synth.py, FluidR3 GM at
  16 kHz, soundfont loaded once) rendering the same notes. Goal: 100x real time.
- The DSP step by step in numpy against the same steps in torch (training/audio/dsp.py,
  torch.set_num_threads(1), inference mode): whether synthesis belongs in the graph.

Median wall time of REPEATS runs after one warm-up; figures are ms of compute per second
of audio. On a machine with other work running they are contended: compare the ratios.
"""

from __future__ import annotations

import io
import pathlib
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pretty_midi
import torch
from threadpoolctl import threadpool_limits

from bench.harness import Row, print_table
from services.generate.audio import dsp
from services.generate.audio.controls import FRAME_RATE_HZ, LOUDNESS_FLOOR_DB, f0_from_notes
from tools.audio_eval.render import NeuralSynth

ROOT = pathlib.Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "generate" / "cadenza-ddsp"
FLUID_R3 = pathlib.Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
LINE_S = 30.0
REPEATS = 5
GOAL_X_REAL_TIME = 100.0
SCALE = (67, 69, 71, 72, 74, 76, 74, 72, 71, 69)

Floats = npt.NDArray[np.float32]


def melody(seconds: float = LINE_S, tempo_bpm: float = 100.0) -> Floats:
    """(pitch, start_s, end_s, velocity) quarter notes, slightly detached, for `seconds`."""
    beat_s = 60.0 / tempo_bpm
    count = int(seconds / beat_s)
    return np.asarray([[SCALE[i % len(SCALE)], i * beat_s, (i + 0.9) * beat_s, 90]
                       for i in range(count)], np.float32)


def melody_midi(notes: Floats, program: int) -> bytes:
    """A one-track MIDI file of the notes on a General MIDI program."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=100.0)
    track = pretty_midi.Instrument(program=program)
    track.notes = [pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(s), end=float(e))
                   for p, s, e, v in notes.tolist()]
    midi.instruments.append(track)
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


def controls(notes: Floats, seconds: float = LINE_S) -> tuple[Floats, Floats]:
    """f0 from the notes and a plain loudness curve (-35 dB sounding, floor between)."""
    n_frames = int(seconds * FRAME_RATE_HZ)
    f0 = f0_from_notes(((p, s, e) for p, s, e, _ in notes.tolist()), n_frames)
    loud = np.full(n_frames, LOUDNESS_FLOOR_DB, np.float32)
    for _, start_s, end_s, _ in notes.tolist():
        loud[int(start_s * FRAME_RATE_HZ):int(end_s * FRAME_RATE_HZ)] = -35.0
    return f0, loud


def median_s(work: Callable[[], object], repeats: int = REPEATS) -> float:
    """Median wall seconds of `work` over `repeats` runs, after one warm-up run."""
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _ms_per_s(seconds: float) -> str:
    return f"{1000 * seconds / LINE_S:.2f} ms/s"


def _fluidsynth_s(notes: Floats, program: int) -> tuple[float | None, str]:
    """FluidSynth's median seconds for the notes, or None and why it did not run."""
    if not FLUID_R3.is_file():
        return None, f"skipped: {FLUID_R3} absent (apt-get install fluid-soundfont-gm)"
    from services.generate.music.synth import MidiRenderer, SynthUnavailableError

    try:
        started = time.perf_counter()
        renderer = MidiRenderer(FLUID_R3, sample_rate_hz=16000)
        load_s = time.perf_counter() - started
    except SynthUnavailableError as e:
        return None, f"skipped: {e}"
    midi = melody_midi(notes, program)
    try:
        seconds = median_s(lambda: renderer.render(midi, max_duration_s=LINE_S + 1.0))
    finally:
        renderer.close()
    return seconds, f"soundfont load {load_s:.1f} s once, not counted"


def _torch_steps(f0: Floats, amplitudes: Floats, noise: Floats, white: Floats,
                 impulse_response: Floats) -> dict[str, Callable[[], object]]:
    from training.audio import dsp as torch_dsp

    tf0, tamp = torch.from_numpy(f0)[None], torch.from_numpy(amplitudes)[None]
    tnoise, twhite = torch.from_numpy(noise)[None], torch.from_numpy(white)[None]
    tir = torch.from_numpy(impulse_response)
    dry = torch_dsp.harmonic(tf0, tamp) + torch_dsp.filtered_noise(tnoise, twhite)
    return {"harmonic": lambda: torch_dsp.harmonic(tf0, tamp),
            "filtered noise": lambda: torch_dsp.filtered_noise(tnoise, twhite),
            "reverb": lambda: torch_dsp.reverb(dry, tir),
            "all three": lambda: torch_dsp.reverb(
                torch_dsp.harmonic(tf0, tamp) + torch_dsp.filtered_noise(tnoise, twhite), tir)}


def run() -> None:
    """Runs the audio benchmarks on one core and prints their table."""
    if not (MODEL / "model.onnx").is_file():
        print("audio bench skipped: models/generate/cadenza-ddsp is missing (make audio-model)")
        return
    synth = NeuralSynth(MODEL, threads=1)
    violin = synth.names.index("violin")
    notes = melody()
    f0, loud = controls(notes)
    timbre = synth.embeddings[violin]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: list[Row] = []
    try:
        with threadpool_limits(1), torch.inference_mode():
            rows += _measure(synth, f0, loud, timbre, notes, int(synth.instruments[violin]
                                                                  ["program"]))
    finally:
        torch.set_num_threads(threads)
    print_table(f"Neural audio synthesis, {synth.card['name']} {synth.card['version']} "
                f"({LINE_S:.0f} s line, 1 core; ratio = reference time / ours)", rows,
                "ours (ORT + numpy DSP)", "reference")


def _measure(synth: NeuralSynth, f0: Floats, loud: Floats, timbre: Floats, notes: Floats,
             program: int) -> list[Row]:
    """The rows, measured with every thread pool already held to one thread."""
    amplitudes, noise = synth.frames(f0, loud, timbre)
    white = dsp.white_noise(f0.size, 0)
    ir = synth.impulse_response
    network_s = median_s(lambda: synth.frames(f0, loud, timbre))
    whole_s = median_s(lambda: synth.render(f0, loud, timbre, seed=0))
    fluid_s, fluid_note = _fluidsynth_s(notes, program)
    rows = [Row("neural render", f"{LINE_S:.0f} s violin line", _ms_per_s(whole_s),
                f"{_ms_per_s(fluid_s)} (FluidSynth, FluidR3)" if fluid_s else "FluidSynth: -",
                f"{fluid_s / whole_s:.2f}x" if fluid_s else "-",
                fluid_note),
            Row("x real time", "neural render, 1 core", f"{LINE_S / whole_s:.0f}x",
                f"{GOAL_X_REAL_TIME:.0f}x (goal)", f"{LINE_S / whole_s / GOAL_X_REAL_TIME:.2f}x",
                "met" if LINE_S / whole_s >= GOAL_X_REAL_TIME else "NOT met"),
            Row("network (ORT)", f"{f0.size} frames", _ms_per_s(network_s), "-", "-",
                f"{network_s / whole_s:.0%} of the render")]
    dry = dsp.harmonic(f0, amplitudes) + dsp.filtered_noise(noise, white)
    numpy_steps: dict[str, Callable[[], object]] = {
        "harmonic": lambda: dsp.harmonic(f0, amplitudes),
        "filtered noise": lambda: dsp.filtered_noise(noise, white),
        "reverb": lambda: dsp.reverb(dry, ir),
        "all three": lambda: dsp.synthesise(f0, amplitudes, noise, ir, 0)}
    torch_steps = _torch_steps(f0, amplitudes, noise, white, ir)
    for step, work in numpy_steps.items():
        ours = median_s(work)
        theirs = median_s(torch_steps[step])
        rows.append(Row(f"DSP: {step}", "numpy vs torch", _ms_per_s(ours),
                        f"{_ms_per_s(theirs)} (torch)", f"{theirs / ours:.2f}x",
                        "numpy includes white noise" if step == "all three" else ""))
    return rows
