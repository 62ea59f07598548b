"""Sentence embeddings of research notes with a model that ships inside a PyPI package.

The `semantic` extra installs `wordllama`, whose wheel carries its 256-dimensional weights
and tokenizer: nothing is downloaded at run time. Without it `local_embedder()` is None
and note search falls back to PostgreSQL full-text search.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol

import numpy as np

__all__ = ["NOTE_DIMENSION", "NoteEmbedder", "local_embedder"]

log = logging.getLogger(__name__)

NOTE_DIMENSION: Final = 256  # the width of research_notes.embedding (vector(256))


class NoteEmbedder(Protocol):
    """Turns texts into unit-length vectors of NOTE_DIMENSION floats."""

    @property
    def name(self) -> str:
        """The model's name, stored beside each vector it made."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), NOTE_DIMENSION) float32, rows of unit length."""
        ...


class _WordLlama:
    name = "wordllama-l2_supercat-256"

    def __init__(self, package_dir: Path) -> None:
        from wordllama import WordLlama

        # The wheel keeps weights/ and tokenizers/ beside the code, laid out like its cache:
        # pointing the cache there finds both, and disable_download makes sure of it.
        self._model = WordLlama.load(
            config="l2_supercat", dim=NOTE_DIMENSION, cache_dir=package_dir, disable_download=True
        )

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self._model.embed(list(texts), norm=True), dtype=np.float32)
        return vectors.reshape(len(texts), NOTE_DIMENSION)


@functools.cache
def local_embedder() -> NoteEmbedder | None:
    """The local embedding model, or None when none is installed (or it fails to load)."""
    try:
        import wordllama
    except ImportError:
        return None
    try:
        return _WordLlama(Path(wordllama.__file__).parent)
    except (OSError, ValueError) as exc:  # a broken install: search by words instead
        log.warning("the local embedding model did not load (%s); notes use full-text search", exc)
        return None
