"""The models this process serves: found in the models folder, loaded before readiness."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from dataclasses import dataclass

from cadenza.kit.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from services.generate.inference.backend import InferenceBackend, ModelSpec
from services.generate.inference.batcher import DecodeBatcher
from services.generate.music.originality import OriginalityIndex
from services.generate.text.model import TextModel

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One served model: its spec, batcher, originality index and load status."""

    spec: ModelSpec
    batcher: DecodeBatcher
    originality: OriginalityIndex | None = None
    text: TextModel | None = None      # a text model's tokenizer and template
    status: str = "loading"


class ModelRegistry:
    """The models this process serves, by name, with the default model."""

    def __init__(self, backend: InferenceBackend, models_dir: pathlib.Path, default_model: str,
                 *, max_batch: int, max_wait_s: float, default_text_model: str = "") -> None:
        self.backend = backend
        self.default_model = default_model
        self.default_text_model = default_text_model
        self.models: dict[str, LoadedModel] = {}
        for folder in sorted(p.parent for p in models_dir.glob("*/model.json")):
            spec = ModelSpec.load(folder)
            if (folder / "model.onnx").is_file():
                batcher = DecodeBatcher(backend, spec, max_batch=max_batch,
                                        max_wait_s=max_wait_s)
                self.models[spec.name] = LoadedModel(spec, batcher)
        if default_model not in self.models:
            raise ValueError(f"default model {default_model!r} has no model.json and "
                             f"model.onnx under {models_dir} (found: {sorted(self.models)}); "
                             "run `make models`")

    async def load_all(self) -> None:
        """Loads every model; the default one must load, the others may fail (and say so)."""
        for model in self.models.values():
            try:
                await self._load(model)
            except Exception as error:
                model.status = f"failed: {error}"
                logger.exception("model %s failed to load", model.spec.name)
                if model.spec.name == self.default_model:
                    raise
            else:
                model.status = "ready"

    async def _load(self, model: LoadedModel) -> None:
        await self.backend.load(model.spec)
        # One real call, so the first caller does not pay for the session's warm-up.
        await model.batcher.step([model.spec.warmup_token], 0, model.batcher.empty_cache())
        if model.spec.modality == "text":
            model.text = await asyncio.to_thread(TextModel, model.spec, model.batcher)
        corpus = model.spec.folder / "originality.npz"
        if corpus.is_file():
            model.originality = await asyncio.to_thread(OriginalityIndex.load, corpus)

    def get(self, name: str, modality: str = "music") -> LoadedModel:
        """The ready model of that name (the modality's default when empty)."""
        default = self.default_text_model if modality == "text" else self.default_model
        model = self.models.get(name or default)
        if model is None:
            if not name and modality == "text":
                raise FailedPrecondition(
                    f"no text model is served here (default {default!r} is not under "
                    "the models folder); run `make text-llm` and restart")
            raise NotFound(f"model {name!r} does not exist; ListModels shows the available "
                           f"ones ({', '.join(sorted(self.models))})")
        if model.spec.modality != modality:
            raise InvalidArgument("model", f"{model.spec.name!r} is a {model.spec.modality} "
                                           f"model; this call needs a {modality} model")
        if model.status != "ready":
            raise Unavailable(f"model {model.spec.name!r} is {model.status}")
        return model

    def text(self, name: str) -> TextModel:
        """The ready text model of that name (the default text model when empty)."""
        text = self.get(name, "text").text
        assert text is not None  # set by _load for every text model
        return text

    async def close(self) -> None:
        """Stops every batcher and closes the backend."""
        for model in self.models.values():
            await model.batcher.close()
        await self.backend.close()
