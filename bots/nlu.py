"""Intent matching from example phrases, embedded and offline.

Two signals, each a nearest-example cosine per intent:

* character n-gram TF-IDF (scikit-learn, ``char_wb`` 2–4-grams): survives typos, since
  "ordr" still shares most n-grams with "order";
* WordLlama static sentence embeddings (weights inside the wheel): catches meaning when
  the words differ ("send this back" ~ "return").

The score of an intent is the weighted mix of the two, and the top intent is taken only
when its score reaches the threshold; otherwise `predict` returns None and the flow takes
its fallback edge. Which mix and threshold: see docs/bots.md (measured on the held-out set
in tests/bots/data/intents_heldout.json, written before any tuning).

Trained models persist as plain numpy arrays plus JSON (``to_bytes`` is an ``.npz`` read
back with ``allow_pickle=False``): nothing executable is ever deserialised.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from bots.text import clean, embed

FORMAT_VERSION = 1
MAX_INTENTS = 500
MAX_EXAMPLES_PER_INTENT = 200
MAX_EXAMPLE_CHARS = 500
MAX_INTENT_NAME = 64
MAX_MODEL_BYTES = 64 * 1024 * 1024
# Uncompressed, summed over the archive's members: a small blob must not inflate unbounded.
MAX_MODEL_UNPACKED_BYTES = 256 * 1024 * 1024
# Names end up in flow graphs, JSON and logs: letters of any script, ASCII digits and
# " _.:-" only; no NUL, surrogates, control characters or look-alike digits such as "²".
_NAME_PUNCTUATION = frozenset("0123456789 _.:-")


def _valid_intent_name(name: object) -> bool:
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_INTENT_NAME
        and (name[0].isalpha() or name[0].isascii() and name[0].isdigit())
        and all(ch.isalpha() or ch in _NAME_PUNCTUATION for ch in name)
    )


# Chosen on the held-out set (docs/bots.md, "NLU"): the char signal carries typos, the
# embedding adds meaning; an even mix routed 40/40 paraphrases where either alone missed
# some. Gibberish scored at most 0.15 and the weakest right answer 0.39: 0.30 sits between
# with room on both sides.
DEFAULT_CHAR_WEIGHT = 0.5
DEFAULT_THRESHOLD = 0.30

_TFIDF_PARAMS = {
    "analyzer": "char_wb",
    "ngram_range": (2, 4),
    "sublinear_tf": True,
    "lowercase": False,  # clean() already casefolds
    "dtype": np.float32,
}


class NLUError(ValueError):
    """Training data or a stored model is unusable; `code` is stable for API answers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Prediction:
    intent: str | None
    confidence: float
    scores: dict[str, float]

    def __iter__(self):
        # Lets callers unpack: intent, confidence, scores = model.predict(text)
        return iter((self.intent, self.confidence, self.scores))


def _validate_intents(intents: object) -> dict[str, list[str]]:
    if not isinstance(intents, dict) or not intents:
        raise NLUError("nlu_no_intents", "intents must be a non-empty mapping")
    if len(intents) > MAX_INTENTS:
        raise NLUError("nlu_too_many_intents", f"at most {MAX_INTENTS} intents")
    out: dict[str, list[str]] = {}
    for name, examples in intents.items():
        if not _valid_intent_name(name):
            raise NLUError(
                "nlu_bad_intent_name",
                "intent names are 1-64 letters, digits, spaces, '_', '-', '.' or ':'",
            )
        if not isinstance(examples, list | tuple) or not examples:
            raise NLUError("nlu_no_examples", f"intent {name!r} needs at least one example")
        if len(examples) > MAX_EXAMPLES_PER_INTENT:
            raise NLUError("nlu_too_many_examples", f"at most {MAX_EXAMPLES_PER_INTENT} examples")
        cleaned = []
        for example in examples:
            if not isinstance(example, str) or len(example) > MAX_EXAMPLE_CHARS:
                raise NLUError("nlu_bad_example", "examples are strings of at most 500 characters")
            text = clean(example, limit=MAX_EXAMPLE_CHARS)
            if text:
                cleaned.append(text)
        if not cleaned:
            raise NLUError("nlu_no_examples", f"intent {name!r} has no usable example")
        out[name] = cleaned
    return out


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _vectorizer(vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
    return TfidfVectorizer(vocabulary=vocabulary, **_TFIDF_PARAMS)


class IntentModel:
    """A trained intent matcher. Build with `train` or `from_arrays` / `from_bytes`."""

    def __init__(
        self,
        *,
        intents: list[str],
        labels: np.ndarray,
        vectorizer: TfidfVectorizer,
        char_matrix: sp.csr_matrix,
        embeddings: np.ndarray,
        char_weight: float,
        threshold: float,
    ) -> None:
        self.intents = intents
        self.labels = labels
        self._vectorizer = vectorizer
        self._char_matrix = char_matrix
        self._embeddings = embeddings
        self.char_weight = char_weight
        self.threshold = threshold
        # Prediction works on these precomputed forms instead of vectorizer.transform and
        # sparse products: scikit-learn's per-call validation alone costs ~0.3 ms, and the
        # p99 target is 5 ms on a shared worker core.
        self._analyzer = vectorizer.build_analyzer()
        self._vocabulary = vectorizer.vocabulary_
        self._idf = np.asarray(vectorizer.idf_, dtype=np.float32)
        by_ngram = char_matrix.tocsc()
        self._ngram_ptr = by_ngram.indptr.astype(np.int64)
        self._ngram_rows = by_ngram.indices.astype(np.int64)
        self._ngram_vals = by_ngram.data.astype(np.float32)
        self._order = np.argsort(labels, kind="stable")
        self._starts = np.searchsorted(labels[self._order], np.arange(len(intents)))

    # -- training -------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        intents: dict[str, list[str]],
        *,
        char_weight: float = DEFAULT_CHAR_WEIGHT,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> IntentModel:
        data = _validate_intents(intents)
        if not (_is_number(char_weight) and _is_number(threshold)) or not (
            0.0 <= char_weight <= 1.0 and 0.0 < threshold <= 1.0
        ):
            # The threshold will come from a flow author's router node: refuse, never raise
            # a TypeError, for "0.5", True or NaN.
            raise NLUError("nlu_bad_parameters", "char_weight in [0, 1], threshold in (0, 1]")
        names = list(data)
        texts: list[str] = []
        labels: list[int] = []
        for index, name in enumerate(names):
            texts.extend(data[name])
            labels.extend([index] * len(data[name]))
        vectorizer = _vectorizer()
        try:
            char_matrix = vectorizer.fit_transform(texts).tocsr().astype(np.float32)
        except ValueError as exc:  # e.g. every example is a single character
            raise NLUError("nlu_no_examples", "examples have no usable characters") from exc
        embeddings = embed(texts) if char_weight < 1.0 else np.zeros((len(texts), 0), np.float32)
        return cls(
            intents=names,
            labels=np.asarray(labels, dtype=np.int32),
            vectorizer=vectorizer,
            char_matrix=char_matrix,
            embeddings=embeddings,
            char_weight=float(char_weight),
            threshold=float(threshold),
        )

    # -- prediction -----------------------------------------------------------------------

    def _per_intent_max(self, similarities: np.ndarray) -> np.ndarray:
        # Every intent has at least one example (checked on train and load), so each
        # segment of the label-sorted similarities is non-empty.
        return np.maximum.reduceat(similarities[self._order].astype(np.float32), self._starts)

    def _query_vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        # The same TF-IDF as TfidfVectorizer.transform (sublinear tf, idf, L2 norm), for one
        # text: the n-gram ids it shares with the vocabulary and their weights.
        counts: dict[int, int] = {}
        for ngram in self._analyzer(text):
            column = self._vocabulary.get(ngram)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        if not counts:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        columns = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        weights = (1.0 + np.log(tf)) * self._idf[columns]
        return columns, weights / np.linalg.norm(weights)

    def char_scores(self, text: str) -> np.ndarray:
        columns, weights = self._query_vector(text)
        rows = len(self.labels)
        if len(columns) == 0:
            return np.zeros(len(self.intents), dtype=np.float32)
        # Gather each query n-gram's column of the example matrix in one go (inverted index).
        starts = self._ngram_ptr[columns]
        lengths = self._ngram_ptr[columns + 1] - starts
        total = int(lengths.sum())
        offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
        similarities = np.bincount(
            self._ngram_rows[offsets],
            weights=self._ngram_vals[offsets] * np.repeat(weights, lengths),
            minlength=rows,
        )
        return self._per_intent_max(np.clip(similarities, 0.0, 1.0))

    def embedding_scores(self, text: str) -> np.ndarray:
        if self._embeddings.shape[1] == 0:
            return np.zeros(len(self.intents), dtype=np.float32)
        query = embed([text])[0]
        return self._per_intent_max(np.clip(self._embeddings @ query, 0.0, 1.0))

    def predict(self, text: object) -> Prediction:
        """Best intent for `text`, or None below the threshold (or for unusable input)."""
        cleaned = clean(text)
        if not cleaned:
            return Prediction(None, 0.0, {name: 0.0 for name in self.intents})
        combined = self.char_weight * self.char_scores(cleaned)
        if self.char_weight < 1.0:
            combined = combined + (1.0 - self.char_weight) * self.embedding_scores(cleaned)
        scores = dict(zip(self.intents, combined.astype(float).tolist(), strict=True))
        top = int(np.argmax(combined))
        confidence = float(combined[top])
        intent = self.intents[top] if confidence >= self.threshold else None
        return Prediction(intent, round(confidence, 6), scores)

    # -- persistence (plain arrays + JSON; never pickle) ----------------------------------

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        vocabulary = sorted(self._vectorizer.vocabulary_.items(), key=lambda item: item[1])
        meta = {
            "format": FORMAT_VERSION,
            "intents": self.intents,
            "ngrams": [ngram for ngram, _ in vocabulary],
            "char_weight": self.char_weight,
            "threshold": self.threshold,
        }
        arrays = {
            "labels": self.labels.astype(np.int32),
            "idf": self._vectorizer.idf_.astype(np.float32),
            "char_data": self._char_matrix.data.astype(np.float32),
            "char_indices": self._char_matrix.indices.astype(np.int32),
            "char_indptr": self._char_matrix.indptr.astype(np.int32),
            "embeddings": self._embeddings.astype(np.float32),
        }
        return arrays, meta

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray], meta: dict) -> IntentModel:
        """Rebuild a model, checking every shape: stored models are data, never trusted."""
        try:
            if meta.get("format") != FORMAT_VERSION:
                raise NLUError("nlu_bad_model", "unknown model format")
            intents = meta["intents"]
            ngrams = meta["ngrams"]
            char_weight = float(meta["char_weight"])
            threshold = float(meta["threshold"])
            if not (isinstance(intents, list) and all(_valid_intent_name(i) for i in intents)):
                raise NLUError("nlu_bad_model", "intents")
            if not (isinstance(ngrams, list) and all(isinstance(g, str) for g in ngrams)):
                raise NLUError("nlu_bad_model", "ngrams")
            if len(set(ngrams)) != len(ngrams) or len(set(intents)) != len(intents):
                raise NLUError("nlu_bad_model", "duplicates")
            if not (0.0 <= char_weight <= 1.0) or not (0.0 < threshold <= 1.0):
                raise NLUError("nlu_bad_model", "parameters")
            labels = np.asarray(arrays["labels"], dtype=np.int32)
            idf = np.asarray(arrays["idf"], dtype=np.float32)
            data = np.asarray(arrays["char_data"], dtype=np.float32)
            indices = np.asarray(arrays["char_indices"], dtype=np.int32)
            indptr = np.asarray(arrays["char_indptr"], dtype=np.int32)
            embeddings = np.asarray(arrays["embeddings"], dtype=np.float32)
            rows, width = len(labels), len(ngrams)
            ok = (
                labels.ndim == 1
                and rows > 0
                and len(intents) > 0
                and labels.min() >= 0
                and labels.max() < len(intents)
                and np.all(np.bincount(labels, minlength=len(intents)) > 0)
                and idf.shape == (width,)
                and indptr.shape == (rows + 1,)
                and indptr[0] == 0
                and np.all(np.diff(indptr) >= 0)
                and indptr[-1] == len(data) == len(indices)
                and (len(indices) == 0 or (indices.min() >= 0 and indices.max() < width))
                and embeddings.ndim == 2
                and embeddings.shape[0] == rows
                and np.all(np.isfinite(data))
                and np.all(np.isfinite(idf))
                and np.all(np.isfinite(embeddings))
            )
            if not ok:
                raise NLUError("nlu_bad_model", "inconsistent arrays")
            if char_weight < 1.0 and embeddings.shape[1] != _embedding_width():
                raise NLUError("nlu_bad_model", "embedding width")
        except NLUError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NLUError("nlu_bad_model", "stored model is unreadable") from exc
        vectorizer = _vectorizer({ngram: i for i, ngram in enumerate(ngrams)})
        vectorizer.idf_ = idf
        return cls(
            intents=list(intents),
            labels=labels,
            vectorizer=vectorizer,
            char_matrix=sp.csr_matrix((data, indices, indptr), shape=(rows, width)),
            embeddings=embeddings,
            char_weight=char_weight,
            threshold=threshold,
        )

    def to_bytes(self) -> bytes:
        arrays, meta = self.to_arrays()
        meta_bytes = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
        buffer = io.BytesIO()
        np.savez_compressed(buffer, meta=meta_bytes, **arrays)
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, blob: bytes) -> IntentModel:
        if not isinstance(blob, bytes | bytearray | memoryview) or len(blob) > MAX_MODEL_BYTES:
            raise NLUError("nlu_bad_model", "stored model is unreadable")
        if not bytes(blob[:4]) == b"PK\x03\x04":
            # Only an .npz archive; a bare .npy (or anything else) is not a stored model.
            raise NLUError("nlu_bad_model", "stored model is unreadable")
        try:
            with zipfile.ZipFile(io.BytesIO(bytes(blob))) as archive:
                unpacked = sum(member.file_size for member in archive.infolist())
            if unpacked > MAX_MODEL_UNPACKED_BYTES:
                raise NLUError("nlu_bad_model", "stored model is too large")
            with np.load(io.BytesIO(bytes(blob)), allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            meta = json.loads(arrays.pop("meta").tobytes().decode())
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            # ValueError covers object arrays refused by allow_pickle=False and bad UTF-8.
            raise NLUError("nlu_bad_model", "stored model is unreadable") from exc
        if not isinstance(meta, dict):
            raise NLUError("nlu_bad_model", "stored model is unreadable")
        return cls.from_arrays(arrays, meta)


def _embedding_width() -> int:
    return int(embed(["x"]).shape[1])
