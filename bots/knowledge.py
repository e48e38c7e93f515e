"""Knowledge-base retrieval over one tenant's own articles, embedded and offline.

An index is built from exactly the articles the caller passes (the caller reads them from
the tenant's schema) and holds nothing else: there is no shared or global store, so two
tenants' indexes cannot mix. Each article is scored against the question by

* lexical similarity: word TF-IDF (uni- and bigrams) and character n-gram TF-IDF (typos),
  averaged;
* meaning: the best WordLlama cosine between the question and the article's title+tags or
  any passage of its body.

`answer` returns the best article only when its score reaches the threshold; below it the
bot says it does not know and offers a human (the flow's handoff edge).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from bots.text import clean, embed

MAX_ARTICLES = 5000
MAX_TITLE_CHARS = 300
MAX_BODY_CHARS = 100_000
MAX_TAGS = 20
MAX_TAG_CHARS = 50
MAX_ID_CHARS = 64
MAX_K = 20
PASSAGE_CHARS = 400

# Measured on tests/bots/test_knowledge.py's small knowledge base (docs/bots.md): with an
# even mix, right answers to typo'd questions scored 0.38 and more, unrelated questions
# 0.14 at most; 0.25 sits between with room on both sides.
DEFAULT_LEXICAL_WEIGHT = 0.5
DEFAULT_THRESHOLD = 0.25


class KnowledgeError(ValueError):
    """Articles cannot be indexed; `code` is stable for API answers."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Article:
    id: int | str
    title: str
    body: str
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hit:
    article_id: int | str
    title: str
    score: float
    lexical: float
    semantic: float


@dataclass(frozen=True)
class Answer:
    """`article_id` is None when nothing reached the threshold: say so, offer a human."""

    article_id: int | str | None
    score: float
    hits: list[Hit] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.article_id is not None


def _validate(articles: Iterable[Article]) -> list[Article]:
    if isinstance(articles, str | bytes) or not isinstance(articles, Iterable):
        raise KnowledgeError("kb_bad_articles", "articles must be a list")
    out: list[Article] = []
    seen: set[int | str] = set()
    for article in articles:
        if len(out) >= MAX_ARTICLES:
            raise KnowledgeError("kb_too_many_articles", f"at most {MAX_ARTICLES} articles")
        if not isinstance(article, Article):
            raise KnowledgeError("kb_bad_article", "each item must be an Article")
        ident = article.id
        if isinstance(ident, bool) or not (
            (isinstance(ident, int) and ident >= 0)
            or (isinstance(ident, str) and 0 < len(ident) <= MAX_ID_CHARS)
        ):
            raise KnowledgeError("kb_bad_article_id", "article ids are ints or short strings")
        if ident in seen:
            raise KnowledgeError("kb_duplicate_article", "article ids must be unique")
        seen.add(ident)
        if not isinstance(article.title, str) or len(article.title) > MAX_TITLE_CHARS:
            raise KnowledgeError("kb_bad_title", "titles are strings of at most 300 characters")
        if not isinstance(article.body, str) or len(article.body) > MAX_BODY_CHARS:
            raise KnowledgeError("kb_bad_body", "bodies are strings of at most 100,000 characters")
        tags = article.tags
        if not isinstance(tags, tuple | list) or len(tags) > MAX_TAGS:
            raise KnowledgeError("kb_bad_tags", "at most 20 tags")
        if not all(isinstance(t, str) and len(t) <= MAX_TAG_CHARS for t in tags):
            raise KnowledgeError("kb_bad_tags", "tags are strings of at most 50 characters")
        out.append(article)
    return out


def _passages(body: str) -> list[str]:
    # Cut on sentence-ish boundaries into ~PASSAGE_CHARS pieces: one long body averaged
    # into a single vector would match nothing in particular.
    passages, current = [], ""
    for sentence in body.replace("\n", ". ").split(". "):
        if current and len(current) + len(sentence) > PASSAGE_CHARS:
            passages.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    if current:
        passages.append(current)
    return [p[: PASSAGE_CHARS * 2] for p in passages]


class KnowledgeIndex:
    """Lexical + embedding index over one tenant's articles. Build with `build`."""

    def __init__(
        self,
        *,
        articles: list[Article],
        word: TfidfVectorizer | None,
        word_matrix,
        char: TfidfVectorizer | None,
        char_matrix,
        passage_vectors: np.ndarray,
        passage_owner: np.ndarray,
        lexical_weight: float,
        threshold: float,
    ) -> None:
        self._articles = articles
        self._word, self._word_matrix = word, word_matrix
        self._char, self._char_matrix = char, char_matrix
        self._passage_vectors = passage_vectors
        self._passage_owner = passage_owner
        self.lexical_weight = lexical_weight
        self.threshold = threshold

    @classmethod
    def build(
        cls,
        articles: Iterable[Article],
        *,
        lexical_weight: float = DEFAULT_LEXICAL_WEIGHT,
        threshold: float = DEFAULT_THRESHOLD,
    ) -> KnowledgeIndex:
        numbers = all(
            isinstance(v, int | float) and not isinstance(v, bool)
            for v in (lexical_weight, threshold)
        )
        if not numbers or not (0.0 <= lexical_weight <= 1.0 and 0.0 < threshold <= 1.0):
            raise KnowledgeError("kb_bad_parameters", "weight in [0, 1], threshold in (0, 1]")
        items = _validate(articles)
        documents, passages, owners = [], [], []
        for index, article in enumerate(items):
            title = clean(article.title, limit=MAX_TITLE_CHARS)
            tags = " ".join(clean(t, limit=MAX_TAG_CHARS) for t in article.tags)
            body = clean(article.body, limit=MAX_BODY_CHARS)
            # The title counts twice: it is the author's own summary of the article.
            documents.append(f"{title} {title} {tags} {body}")
            for passage in [f"{title} {tags}".strip(), *_passages(body)]:
                if passage:
                    passages.append(passage)
                    owners.append(index)
        word = char = word_matrix = char_matrix = None
        if any(doc.strip() for doc in documents):
            word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, lowercase=False)
            char = TfidfVectorizer(
                analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True, lowercase=False
            )
            try:
                word_matrix = word.fit_transform(documents).tocsr()
            except ValueError:  # no word tokens at all (e.g. only punctuation)
                word = word_matrix = None
            char_matrix = char.fit_transform(documents).tocsr()
        return cls(
            articles=items,
            word=word,
            word_matrix=word_matrix,
            char=char,
            char_matrix=char_matrix,
            passage_vectors=embed(passages),
            passage_owner=np.asarray(owners, dtype=np.int64),
            lexical_weight=float(lexical_weight),
            threshold=float(threshold),
        )

    def __len__(self) -> int:
        return len(self._articles)

    def _lexical(self, query: str) -> np.ndarray:
        scores = np.zeros(len(self._articles), dtype=np.float64)
        parts = 0
        for vectorizer, matrix in (
            (self._word, self._word_matrix),
            (self._char, self._char_matrix),
        ):
            if vectorizer is None:
                continue
            parts += 1
            scores += (matrix @ vectorizer.transform([query]).T).toarray().ravel()
        return scores / parts if parts else scores

    def _semantic(self, query: str) -> np.ndarray:
        best = np.zeros(len(self._articles), dtype=np.float64)
        if len(self._passage_owner):
            similarities = np.clip(self._passage_vectors @ embed([query])[0], 0.0, 1.0)
            np.maximum.at(best, self._passage_owner, similarities.astype(np.float64))
        return best

    def retrieve(self, query: object, k: int = 3) -> list[Hit]:
        """Up to `k` best articles for `query`, best first (any score; see `answer`)."""
        if isinstance(k, bool) or not isinstance(k, int) or not (1 <= k <= MAX_K):
            raise KnowledgeError("kb_bad_k", f"k is an integer from 1 to {MAX_K}")
        text = clean(query)
        if not text or not self._articles:
            return []
        lexical = self._lexical(text)
        semantic = self._semantic(text)
        combined = self.lexical_weight * lexical + (1.0 - self.lexical_weight) * semantic
        order = np.argsort(-combined, kind="stable")[:k]
        return [
            Hit(
                article_id=self._articles[i].id,
                title=self._articles[i].title,
                score=round(float(combined[i]), 6),
                lexical=round(float(lexical[i]), 6),
                semantic=round(float(semantic[i]), 6),
            )
            for i in order
        ]

    def answer(self, query: object, k: int = 3) -> Answer:
        """The best article if it reaches the threshold, else "I don't know" (None)."""
        hits = self.retrieve(query, k)
        if not hits or hits[0].score < self.threshold:
            return Answer(None, hits[0].score if hits else 0.0, hits)
        return Answer(hits[0].article_id, hits[0].score, hits)
