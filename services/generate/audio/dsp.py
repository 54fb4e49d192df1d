"""The synthesiser's signal processing in numpy: harmonic oscillators, filtered noise, reverb.

The network runs at frame rate (ONNX); these turn its frames into samples. They mirror
training/audio/dsp.py (torch, differentiable) operation for operation; a test holds the
two to the same output. Measured against running the same steps in torch, numpy is the
faster here (see bench/audio.py), so serving keeps them out of the graph.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.fft
import scipy.signal

from services.generate.audio.controls import HOP, SAMPLE_RATE_HZ

Floats = npt.NDArray[np.float32]
CHUNK_FRAMES = 1024   # harmonic synthesis in chunks: 64 oscillators x 10 min would be 2.5 GB


def upsample(frames: Floats) -> Floats:
    """[T, ...] frame values to [T*HOP, ...] samples, linear between frame starts."""
    following = np.concatenate([frames[1:], frames[-1:]], axis=0)
    weight = (np.arange(HOP, dtype=np.float32) / HOP).reshape(1, HOP, *([1] * (frames.ndim - 1)))
    mixed = frames[:, None] * (1.0 - weight) + following[:, None] * weight
    return mixed.reshape(frames.shape[0] * HOP, *frames.shape[1:]).astype(np.float32)


def harmonic(f0_hz: Floats, amplitudes: Floats) -> Floats:
    """A bank of harmonic sines: f0 [T] Hz, amplitudes [T, H] (zero above Nyquist).

    Amplitudes are linear between frame starts: each frame's samples blend two matrix
    products (its own amplitudes and the next frame's) rather than upsampling [T*HOP, H].
    """
    f0 = upsample(f0_hz.astype(np.float32))
    # float64 for the running phase: float32 drifts audibly over minutes of samples.
    running = np.cumsum(2.0 * np.pi * f0.astype(np.float64) / SAMPLE_RATE_HZ)
    phase = np.mod(running, 2.0 * np.pi).astype(np.float32).reshape(-1, HOP)
    amplitudes = amplitudes.astype(np.float32)
    following = np.concatenate([amplitudes[1:], amplitudes[-1:]], axis=0)
    k = np.arange(1, amplitudes.shape[1] + 1, dtype=np.float32)
    weight = np.arange(HOP, dtype=np.float32) / HOP
    out = np.empty(phase.shape, np.float32)
    for first in range(0, phase.shape[0], CHUNK_FRAMES):
        span = slice(first, first + CHUNK_FRAMES)
        # Harmonics at or above Nyquist are exactly zero (the network masks them): a high
        # line needs only its lowest few sines, which halves the cost of a violin line.
        sounding = np.flatnonzero((amplitudes[span] != 0).any(axis=0) |
                                  (following[span] != 0).any(axis=0))
        h = int(sounding[-1]) + 1 if sounding.size else 1
        sines = np.sin(phase[span, :, None] * k[:h])                 # [t, HOP, h]
        now = np.matmul(sines, amplitudes[span, :h, None])[..., 0]   # [t, HOP]
        then = np.matmul(sines, following[span, :h, None])[..., 0]
        out[span] = now * (1.0 - weight) + then * weight
    return out.reshape(-1)


def noise_impulse_responses(magnitudes: Floats) -> Floats:
    """[T, N] band magnitudes (0 Hz to Nyquist) to [T, 2(N-1)] linear-phase FIR filters."""
    taps = 2 * (magnitudes.shape[1] - 1)
    ir = np.fft.irfft(magnitudes.astype(np.float32), n=taps, axis=1)
    ir = np.roll(ir, taps // 2, axis=1) * np.hanning(taps + 1)[:taps].astype(np.float32)
    return ir.astype(np.float32)


def filtered_noise(magnitudes: Floats, white: Floats) -> Floats:
    """White noise [T, HOP] shaped frame by frame by [T, N] magnitudes; overlap-added."""
    ir = noise_impulse_responses(magnitudes)
    size = 2 * HOP
    assert ir.shape[1] <= HOP + 1, "filter longer than a hop: the overlap-add below needs <= 2 hops"
    # scipy.fft keeps float32 (numpy's FFT works in float64): half the time, same samples.
    spectrum = scipy.fft.rfft(ir, size, axis=1) * scipy.fft.rfft(white, size, axis=1)
    shaped: Floats = scipy.fft.irfft(spectrum, size, axis=1).astype(np.float32)
    head, tail = shaped[:, :HOP], shaped[:, HOP:]
    out = head.copy()
    out[1:] += tail[:-1]
    return out.reshape(-1)


def white_noise(n_frames: int, seed: int) -> Floats:
    """Uniform noise in [-1, 1) as [T, HOP] frames, the same for the same seed."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (n_frames, HOP)).astype(np.float32)


def reverb(dry: Floats, impulse_response: Floats) -> Floats:
    """Dry signal plus its convolution with the learned room; the tail rings on past the end."""
    wet: Floats = scipy.signal.fftconvolve(dry, impulse_response).astype(np.float32)
    wet[: dry.size] += dry
    return wet


def synthesise(f0_hz: Floats, amplitudes: Floats, noise: Floats, impulse_response: Floats,
               seed: int) -> Floats:
    """Samples at SAMPLE_RATE_HZ for one voice's network outputs (with the reverb's tail)."""
    dry = harmonic(f0_hz, amplitudes) + filtered_noise(noise, white_noise(len(f0_hz), seed))
    return reverb(dry, impulse_response)
