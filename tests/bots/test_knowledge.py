"""Knowledge-base retrieval (bots/knowledge.py): per-tenant indexes, threshold, hostile input."""

from __future__ import annotations

import pytest

from bots.knowledge import Article, KnowledgeError, KnowledgeIndex

ACME = [
    Article(
        1,
        "Shipping times",
        "Orders ship within two business days. Standard delivery takes three to five days; "
        "express delivery arrives the next day. You get a tracking link by e-mail.",
        ("shipping", "delivery"),
    ),
    Article(
        2,
        "Returns and refunds",
        "You can return any item within 30 days of delivery for a full refund. Print the "
        "return label from your account and drop the parcel at any post office. Refunds "
        "reach your card within five days after we receive the item.",
        ("returns", "refund"),
    ),
    Article(
        3,
        "Changing your password",
        "Open Settings, choose Security and click Change password. If you forgot it, use the "
        "'Forgot password' link on the sign-in page and follow the e-mail.",
        ("account", "password"),
    ),
    Article(
        4,
        "Store opening hours",
        "Our shops are open Monday to Saturday from 9 am to 7 pm, and closed on Sundays and "
        "public holidays.",
        ("hours", "store"),
    ),
]

GLOBEX = [
    Article(
        "g-1",
        "Globex warranty",
        "Every Globex doomsday device carries a two year warranty covering parts and labour.",
        ("warranty",),
    ),
    Article(
        "g-2",
        "Globex refunds for devices",
        "Devices bought from Globex can be refunded within 14 days if unopened.",
        ("refund",),
    ),
]

QUESTIONS = [
    ("how long does shiping take", 1),
    ("when will my delivery arrive", 1),
    ("can i get my money back for an item", 2),
    ("how do I return a product", 2),
    ("i forgot my pasword", 3),
    ("how to change password", 3),
    ("are you open on sunday", 4),
    ("what time does the store close", 4),
]

UNRELATED = [
    "what is the capital of france",
    "tell me a joke about penguins",
    "asdkjh qwpoeiru zxmcnv",
    "who won the football match yesterday",
    "how do i bake sourdough bread",
]


@pytest.fixture(scope="module")
def acme_index() -> KnowledgeIndex:
    return KnowledgeIndex.build(ACME)


@pytest.fixture(scope="module")
def globex_index() -> KnowledgeIndex:
    return KnowledgeIndex.build(GLOBEX)


@pytest.mark.parametrize(("question", "article_id"), QUESTIONS)
def test_it_questions_with_typos_find_the_right_article(acme_index, question, article_id):
    answer = acme_index.answer(question)
    assert answer.known, (question, answer)
    assert answer.article_id == article_id


@pytest.mark.parametrize("question", UNRELATED)
def test_it_unrelated_questions_get_i_dont_know(acme_index, question):
    answer = acme_index.answer(question)
    assert not answer.known, (question, answer)
    assert answer.article_id is None
    assert answer.score < acme_index.threshold


def test_it_indexes_never_mix_tenants(acme_index, globex_index):
    acme_ids = {a.id for a in ACME}
    globex_ids = {a.id for a in GLOBEX}
    probes = (
        [q for q, _ in QUESTIONS]
        + UNRELATED
        + [
            "globex doomsday device warranty",
            "refund for a globex device",
        ]
    )
    for question in probes:
        assert {h.article_id for h in acme_index.retrieve(question, k=20)} <= acme_ids
        assert {h.article_id for h in globex_index.retrieve(question, k=20)} <= globex_ids
    # The question that fits Globex best still only ever answers from acme's own articles.
    answer = acme_index.answer("globex doomsday device warranty")
    assert answer.article_id is None or answer.article_id in acme_ids
    assert globex_index.answer("globex doomsday device warranty").article_id == "g-1"
    # Building one index does not change another already built.
    before = [h.score for h in acme_index.retrieve("refund", k=4)]
    KnowledgeIndex.build(GLOBEX + [Article(99, "Refund refund refund", "refund")])
    assert [h.score for h in acme_index.retrieve("refund", k=4)] == before


def test_it_retrieve_orders_hits_and_bounds_k(acme_index):
    hits = acme_index.retrieve("refund for my return", k=4)
    assert [h.article_id for h in hits][0] == 2
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert len(acme_index.retrieve("refund", k=2)) == 2
    for bad_k in (0, -1, 21, True, "3", 2.5):
        with pytest.raises(KnowledgeError) as err:
            acme_index.retrieve("refund", k=bad_k)
        assert err.value.code == "kb_bad_k"


def test_it_empty_knowledge_base_never_knows():
    index = KnowledgeIndex.build([])
    assert index.retrieve("refund") == []
    assert not index.answer("refund").known


@pytest.mark.parametrize(
    "query",
    ["", "\x00", "\ud800\udfff", "\u202e\u200b", "x" * 1_000_000, None, 7, ["refund"], b"refund"],
)
def test_it_hostile_queries_never_raise(acme_index, query):
    answer = acme_index.answer(query)
    assert answer.article_id is None or answer.article_id in {a.id for a in ACME}


def test_it_hostile_article_text_is_indexed_safely():
    index = KnowledgeIndex.build(
        [
            Article(
                1, "Refunds\x00\ud800", "Money back \u202e within 30 days\x00", ("ref\udc00und",)
            ),
            Article(2, "", "", ()),
            Article(3, "???", "!!!", ()),
        ]
    )
    assert index.answer("money back within 30 days").article_id == 1


@pytest.mark.parametrize(
    ("articles", "code"),
    [
        ("not a list", "kb_bad_articles"),
        (5, "kb_bad_articles"),
        ([{"id": 1, "title": "t", "body": "b"}], "kb_bad_article"),
        ([Article(-1, "t", "b")], "kb_bad_article_id"),
        ([Article(True, "t", "b")], "kb_bad_article_id"),
        ([Article("", "t", "b")], "kb_bad_article_id"),
        ([Article(1.5, "t", "b")], "kb_bad_article_id"),
        ([Article(1, "t", "b"), Article(1, "u", "c")], "kb_duplicate_article"),
        ([Article(1, "t" * 301, "b")], "kb_bad_title"),
        ([Article(1, None, "b")], "kb_bad_title"),
        ([Article(1, "t", "b" * 100_001)], "kb_bad_body"),
        ([Article(1, "t", "b", ("x",) * 21)], "kb_bad_tags"),
        ([Article(1, "t", "b", (5,))], "kb_bad_tags"),
        ([Article(1, "t", "b", "tags")], "kb_bad_tags"),
    ],
)
def test_it_bad_articles_are_refused_with_a_stable_code(articles, code):
    with pytest.raises(KnowledgeError) as err:
        KnowledgeIndex.build(articles)
    assert err.value.code == code


@pytest.mark.parametrize(
    "params",
    [{"threshold": "0.5"}, {"threshold": True}, {"threshold": float("nan")}, {"lexical_weight": 2}],
)
def test_it_refuses_bad_parameters_with_a_stable_code(params):
    with pytest.raises(KnowledgeError) as err:
        KnowledgeIndex.build(ACME, **params)
    assert err.value.code == "kb_bad_parameters"
