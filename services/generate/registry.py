"""The models this process serves: found in the models folder, loaded before readiness."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from dataclasses import dataclass

from cadenza.kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from cadenza.kit.validate import shown
from services.generate.audio.model import AudioModel
from services.generate.image.motif import MotifModel
from services.generate.inference.backend import InferenceBackend, ModelSpec
from services.generate.inference.batcher import DecodeBatcher
from services.generate.music.originality import OriginalityIndex
from services.generate.text.model import TextModel

logger = logging.getLogger(__name__)


# What to run when the default model of a modality is absent.
_BUILD_TARGETS = {"text": "make text-llm", "audio": "make audio-model", "music": "make models",
                  "image": "make image-model"}


@dataclass
class LoadedModel:
    """One served model: its spec, batcher (decoders), originality index and load status."""

    spec: ModelSpec
    decoder: DecodeBatcher | None = None   # music and text models
    originality: OriginalityIndex | None = None
    text: TextModel | None = None      # a text model's tokenizer and template
    audio: AudioModel | None = None    # an audio model's instruments and room
    image: MotifModel | None = None    # an image model's sampler
    status: str = "loading"

    @property
    def batcher(self) -> DecodeBatcher:
        """The decode batcher; ValueError for a model that is not a decoder."""
        if self.decoder is None:
            raise ValueError(f"model {self.spec.name} is a {self.spec.modality} model, "
                             "not a decoder")
        return self.decoder


class ModelRegistry:
    """The models this process serves, by name, with the default model."""

    def __init__(self, backend: InferenceBackend, models_dir: pathlib.Path, default_model: str,
                 *, max_batch: int, max_wait_s: float, default_text_model: str = "",
                 default_audio_model: str = "", default_image_model: str = "") -> None:
        self.backend = backend
        self.default_model = default_model
        self.default_text_model = default_text_model
        self.default_audio_model = default_audio_model
        self.default_image_model = default_image_model
        self.models: dict[str, LoadedModel] = {}
        for folder in sorted(p.parent for p in models_dir.glob("*/model.json")):
            spec = ModelSpec.load(folder)
            if (folder / "model.onnx").is_file():
                # Decoders share calls through a batcher; an audio model's calls are whole
                # voices, each its own call.
                batcher = (DecodeBatcher(backend, spec, max_batch=max_batch,
                                         max_wait_s=max_wait_s) if spec.decoder else None)
                self.models[spec.name] = LoadedModel(spec, batcher)
        if default_model not in self.models:
            raise ValueError(f"default model {default_model!r} has no model.json and "
                             f"model.onnx under {models_dir} (found: {sorted(self.models)}); "
                             "run `make models`")

    async def load_all(self) -> None:
        """Loads every model; the default one must load, the others may fail (and say so).

        They load at once: a Triton server that lacks a model keeps its load waiting for
        the whole load timeout, and the other models need not wait behind it.
        """
        models = list(self.models.values())
        errors = await asyncio.gather(*(self._load_status(m) for m in models))
        for model, error in zip(models, errors, strict=True):
            if error is not None and model.spec.name == self.default_model:
                raise error

    async def _load_status(self, model: LoadedModel) -> Exception | None:
        try:
            await self._load(model)
        except Exception as error:
            model.status = f"failed: {error}"
            logger.exception("model %s failed to load", model.spec.name)
            return error
        model.status = "ready"
        return None

    async def _load(self, model: LoadedModel) -> None:
        await self.backend.load(model.spec)
        if model.spec.modality == "audio":
            audio = await asyncio.to_thread(AudioModel, model.spec, self.backend)
            await audio.warm_up()  # one real call before "ready"
            model.audio = audio
            return
        if model.spec.modality == "image":
            image = MotifModel(model.spec, self.backend)
            await image.warm_up()
            model.image = image
            return
        # One real call, so the first caller does not pay for the session's warm-up.
        await model.batcher.step([model.spec.warmup_token], 0, model.batcher.empty_cache())
        if model.spec.modality == "text":
            model.text = await asyncio.to_thread(TextModel, model.spec, model.batcher)
        corpus = model.spec.folder / "originality.npz"
        if corpus.is_file():
            model.originality = await asyncio.to_thread(OriginalityIndex.load, corpus)

    def get(self, name: str, modality: str = "music") -> LoadedModel:
        """The ready model of that name (the modality's default when empty)."""
        default = {"text": self.default_text_model, "audio": self.default_audio_model,
                   "image": self.default_image_model}.get(modality, self.default_model)
        model = self.models.get(name or default)
        if model is None:
            if not name and modality in ("text", "audio", "image"):
                raise FailedPrecondition(
                    f"no {modality} model is served here (default {default!r} is not under "
                    f"the models folder); run `{_BUILD_TARGETS[modality]}` and restart")
            raise NotFound(f"model {shown(name)} does not exist; ListModels shows the available "
                           f"ones ({', '.join(sorted(self.models))})")
        if model.spec.modality != modality:
            raise InvalidArgument("model", f"{model.spec.name!r} is a {model.spec.modality} "
                                           f"model; this call needs {_article(modality)} "
                                           f"{modality} model")
        if model.status != "ready":
            raise Unavailable(f"model {model.spec.name!r} is {model.status}")
        return model

    def text(self, name: str) -> TextModel:
        """The ready text model of that name (the default text model when empty)."""
        text = self.get(name, "text").text
        assert text is not None  # set by _load for every text model
        return text

    def audio(self, name: str) -> AudioModel:
        """The ready audio model of that name (the default audio model when empty)."""
        audio = self.get(name, "audio").audio
        assert audio is not None  # set by _load for every audio model
        return audio

    def image(self, name: str) -> MotifModel:
        """The ready image model of that name (the default image model when empty)."""
        image = self.get(name, "image").image
        assert image is not None  # set by _load for every image model
        return image

    @property
    def serves_audio(self) -> bool:
        """Whether any audio model is ready (then librosa's kernels need warming too)."""
        return any(m.audio is not None for m in self.models.values())

    @property
    def serves_images(self) -> bool:
        """Whether any image model is ready (then its prompts need the text encoder)."""
        return any(m.image is not None for m in self.models.values())

    async def close(self) -> None:
        """Stops every batcher and closes the backend."""
        for model in self.models.values():
            if model.decoder is not None:
                await model.decoder.close()
        await self.backend.close()


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"
