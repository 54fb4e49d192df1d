"""The image room: motifs sampled by the image model, and covers composed around them.

Network calls (one per DDIM step) go through the model's backend, so a cancelled call
stops at the next step. Every CPU step (embedding the prompt, reading a MIDI file,
composing and encoding the cover) runs on this room's bounded executor, never on the
event loop.
"""

from __future__ import annotations

import asyncio
import functools
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
from PIL import Image

from cadenza.kit.errors import FailedPrecondition
from services.generate.catalog_client import RetrievalTracks
from services.generate.image.cover import Cover, compose
from services.generate.image.factors import MusicFeatures
from services.generate.image.motif import MotifModel
from services.generate.image.piece import piece_features

T = TypeVar("T")
# A cover from a prompt alone: every factor at the middle of its range.
NEUTRAL = MusicFeatures(key="", mode="", chroma=(), spectral_centroid_hz=0.0, mfcc_mean=(),
                        tempo_bpm=0.0, onset_rate_hz=0.0, rms_db_mean=-25.0,
                        dynamic_range_db=23.5)
Encoder = Callable[[list[str]], npt.NDArray[np.float32]]


@dataclass(frozen=True)
class Sampling:
    """Guidance weight and DDIM steps, checked; None: the model's default."""

    guidance: float | None
    steps: int | None


@dataclass(frozen=True)
class ImageRequest:
    """A checked GenerateImage."""

    model: str
    prompt: str
    count: int
    sampling: Sampling
    seed: int
    size: int
    image_format: str     # "png" | "webp"


@dataclass(frozen=True)
class Images:
    """Samples of the motif model, encoded."""

    images: tuple[bytes, ...]
    image_format: str
    size: int
    model: str
    version: str
    seed: int
    guidance: float
    steps: int


@dataclass(frozen=True)
class CoverRequest:
    """A checked GenerateCover: track_id, midi, or neither (then a prompt is set)."""

    model: str
    track_id: str | None
    midi: bytes | None
    prompt: str
    title: str
    artist: str
    weights: dict[str, float]     # every factor, the largest 1
    seed: int
    size: int
    image_format: str
    sampling: Sampling


@dataclass(frozen=True)
class CoverResult:
    """A composed cover and what drew it."""

    cover: Cover
    seed: int
    model: str             # empty when no motif was drawn
    version: str
    motif_prompt: str


class ImageRoom:
    """Samples motifs and composes covers; owns the executor its CPU work runs on."""

    def __init__(self, tracks: RetrievalTracks, encoder: Callable[[], Encoder | None],
                 workers: int = 2) -> None:
        self.tracks = tracks
        self._encoder = encoder
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="image")

    async def _cpu(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(function, *args))

    async def _embed(self, prompt: str) -> npt.NDArray[np.float32]:
        encode = await self._cpu(self._encoder)   # loads the encoder on first use
        if encode is None:
            raise FailedPrecondition("the image model reads prompts through the MiniLM text "
                                     "encoder, which is not under models/text; run "
                                     "`make text-model` and restart")
        return await self._cpu(encode, [prompt])

    async def images(self, model: MotifModel, request: ImageRequest) -> Images:
        """`count` motifs for the prompt, upscaled to the size and encoded."""
        guidance, steps = model.sampling(request.sampling.guidance, request.sampling.steps)
        text = np.repeat(await self._embed(request.prompt), request.count, axis=0)
        rgba = await model.sample(text, steps=steps, guidance=guidance, seed=request.seed)
        encoded = await self._cpu(_encode_all, rgba, request.size, request.image_format)
        return Images(encoded, request.image_format, request.size, model.name, model.version,
                      request.seed, guidance, steps)

    async def cover(self, model: MotifModel | None, request: CoverRequest) -> CoverResult:
        """The cover for a track or a piece: its features, a motif, the title and artist."""
        features, title, artist, words = await self._subject(request)
        prompt = request.prompt or words
        motif = None
        if model is not None and prompt and request.weights["motif"] > 0:
            guidance, steps = model.sampling(request.sampling.guidance, request.sampling.steps)
            motif = (await model.sample(await self._embed(prompt), steps=steps,
                                        guidance=guidance, seed=request.seed))[0]
        cover = await self._cpu(functools.partial(
            compose, features, request.weights, request.seed, request.size, motif,
            request.title or title, request.artist or artist, request.image_format))
        drawn = motif is not None
        return CoverResult(cover, request.seed, model.name if drawn and model else "",
                           model.version if drawn and model else "", prompt if drawn else "")

    async def _subject(self, request: CoverRequest) -> tuple[MusicFeatures, str, str, str]:
        if request.track_id is not None:
            track = await self.tracks.cover(request.track_id)
            return track.features, track.title, track.artist, track.words
        if request.midi is not None:
            return await self._cpu(piece_features, request.midi), "", "", ""
        return NEUTRAL, "", "", ""

    async def close(self) -> None:
        """Stops the executor; work already running finishes on its own."""
        self._executor.shutdown(wait=False, cancel_futures=True)


def _encode_all(rgba: npt.NDArray[np.uint8], size: int, image_format: str
                ) -> tuple[bytes, ...]:
    return tuple(encode_rgba(x, size, image_format) for x in rgba)


def encode_rgba(rgba: npt.NDArray[np.uint8], size: int, image_format: str) -> bytes:
    """One RGBA motif upscaled (Lanczos) to size x size, as PNG or WebP bytes."""
    image = Image.fromarray(rgba, "RGBA")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if image_format == "webp":
        image.save(buffer, format="WEBP", quality=90)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()
