"""The models this process serves: found in the models folder, loaded before readiness."""

from __future__ import annotations

import asyncio
import logging
import pathlib
from dataclasses import dataclass

from cadenza.kit.errors import NotFound, Unavailable
from services.generate.inference.backend import InferenceBackend, ModelSpec
from services.generate.inference.batcher import DecodeBatcher
from services.generate.music.originality import OriginalityIndex

logger = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One served model: its spec, batcher, originality index and load status."""

    spec: ModelSpec
    batcher: DecodeBatcher
    originality: OriginalityIndex | None = None
    status: str = "loading"


class ModelRegistry:
    """The models this process serves, by name, with the default model."""

    def __init__(self, backend: InferenceBackend, models_dir: pathlib.Path, default_model: str,
                 *, max_batch: int, max_wait_s: float) -> None:
        self.backend = backend
        self.default_model = default_model
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
        await model.batcher.step([model.spec.vocabulary.BOS], 0, model.batcher.empty_cache())
        corpus = model.spec.folder / "originality.npz"
        if corpus.is_file():
            model.originality = await asyncio.to_thread(OriginalityIndex.load, corpus)

    def get(self, name: str) -> LoadedModel:
        """The ready model of that name (the default when empty)."""
        model = self.models.get(name or self.default_model)
        if model is None:
            raise NotFound(f"model {name!r} does not exist; ListModels shows the available "
                           f"ones ({', '.join(sorted(self.models))})")
        if model.status != "ready":
            raise Unavailable(f"model {model.spec.name!r} is {model.status}")
        return model

    async def close(self) -> None:
        """Stops every batcher and closes the backend."""
        for model in self.models.values():
            await model.batcher.close()
        await self.backend.close()
