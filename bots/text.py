"""Text clean-up and the embedded sentence embedder shared by the NLU and the knowledge base.

Everything here is offline: the `wordllama` wheel carries its static embedding weights and
tokenizer inside the package, and we load them from there with downloads disabled, so a
missing file fails loudly instead of reaching for the network.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from pathlib import Path

import numpy as np
import wordllama

# Whatever a customer types is cut to this before any work: n-gram and token costs grow
# with length, and no intent or question needs more than a few sentences.
MAX_INPUT_CHARS = 1000

_SURROGATES = re.compile("[\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
_EMBEDDER_LOCK = threading.Lock()


def clean(text: object, *, limit: int = MAX_INPUT_CHARS) -> str:
    """Return a normalised, bounded form of `text`; anything that is not a str becomes "".

    Lone surrogates cannot be encoded (the Rust tokenizer would raise), control and format
    characters (NUL, zero-width joiners, bidi overrides) carry no meaning but can split
    n-grams, so both become spaces. NFKC folds compatibility forms ("ｏｒｄｅｒ", "²")
    so they match the plain spelling.
    """
    if not isinstance(text, str):
        return ""
    # Cut before normalising too: NFKC can expand, and we never want to walk a megabyte.
    text = text[: limit * 2]
    text = _SURROGATES.sub(" ", text)
    text = unicodedata.normalize("NFKC", text)
    text = "".join(
        " " if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") else ch for ch in text
    )
    text = _SPACES.sub(" ", text).strip().casefold()
    return text[:limit]


@functools.cache
def _load_wordllama():
    # Loaded once per process on first use (~0.25 s, plus ~0.6 s to import the package the
    # first time); the weights live in the installed package folder, never downloaded.
    package_dir = Path(wordllama.__file__).resolve().parent
    return wordllama.WordLlama.load(cache_dir=package_dir, disable_download=True)


def embedder():
    """The process-wide WordLlama model (lazy, cached, thread-safe first load)."""
    with _EMBEDDER_LOCK:
        return _load_wordllama()


def embed(texts: list[str]) -> np.ndarray:
    """Unit-length float32 sentence vectors for already-cleaned `texts`.

    An empty text (or one made only of unknown tokens) gets a zero vector: its cosine with
    anything is 0, so it can never look like a match.
    """
    model = embedder()
    if not texts:
        return np.zeros((0, model.embedding.shape[1]), dtype=np.float32)
    # Empty strings make the average pool divide by zero; give them a placeholder and zero
    # them afterwards.
    safe = [t if t else "." for t in texts]
    vectors = np.asarray(model.embed(safe, norm=False), dtype=np.float32)
    vectors = np.nan_to_num(vectors, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 1e-12)
    for i, t in enumerate(texts):
        if not t:
            out[i] = 0.0
    return out
