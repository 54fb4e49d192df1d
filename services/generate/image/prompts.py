"""The prompt encoder: MiniLM sentence embeddings, the same numbers the motif model was
trained on (training/image/train.py embeds its captions with this encoder and file)."""

from __future__ import annotations

import logging
import pathlib
import threading

from cadenza.kit.text_encoder import TextEncoder
from services.generate.image.room import Encoder

logger = logging.getLogger(__name__)


class PromptEncoder:
    """Loads the encoder once (at warm-up, or at first use); None while it is absent."""

    def __init__(self, model_dir: pathlib.Path) -> None:
        self.model_dir = model_dir
        self._encoder: TextEncoder | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Opens the encoder; logs and stays empty when the model folder lacks it."""
        with self._lock:
            if self._encoder is not None:
                return
            try:
                self._encoder = TextEncoder.load(self.model_dir, ["CPUExecutionProvider"],
                                                 intra_op_threads=1)
            except FileNotFoundError as error:
                logger.warning("image prompts cannot be read: %s", error)

    def get(self) -> Encoder | None:
        """The encode function, loading the encoder on first use; None when absent."""
        if self._encoder is None:
            self.load()
        return None if self._encoder is None else self._encoder.encode
