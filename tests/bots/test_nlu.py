"""Intent matching (bots/nlu.py) against the held-out set written before any tuning."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from bots import nlu
from bots.nlu import IntentModel, NLUError
from bots.text import clean

ROOT = Path(__file__).resolve().parents[2]
DATA = json.loads((Path(__file__).parent / "data" / "intents_heldout.json").read_text())


@pytest.fixture(scope="module")
def model() -> IntentModel:
    return IntentModel.train(DATA["train"])


def test_it_heldout_paraphrases_with_typos_route_at_least_90_percent(model):
    assert len(DATA["heldout"]) >= 30
    misses = [
        (item["text"], item["intent"], model.predict(item["text"]).intent)
        for item in DATA["heldout"]
        if model.predict(item["text"]).intent != item["intent"]
    ]
    accuracy = 1 - len(misses) / len(DATA["heldout"])
    assert accuracy >= 0.90, misses


def test_it_gibberish_falls_back(model):
    assert len(DATA["gibberish"]) >= 10
    for text in DATA["gibberish"]:
        intent, confidence, scores = model.predict(text)
        assert intent is None, (text, confidence)
        assert confidence < model.threshold
        assert set(scores) == set(DATA["train"])


def test_it_training_examples_route_to_themselves(model):
    for name, examples in DATA["train"].items():
        for example in examples:
            assert model.predict(example).intent == name


def test_it_combination_beats_or_matches_each_signal_alone():
    # The reason for paying for two signals: keep it honest if defaults change.
    def accuracy(m: IntentModel) -> float:
        hits = sum(m.predict(h["text"]).intent == h["intent"] for h in DATA["heldout"])
        return hits / len(DATA["heldout"])

    combined = accuracy(IntentModel.train(DATA["train"]))
    char_only = accuracy(IntentModel.train(DATA["train"], char_weight=1.0))
    embed_only = accuracy(IntentModel.train(DATA["train"], char_weight=0.0))
    assert combined >= max(char_only, embed_only)


def test_it_persistence_round_trip_gives_identical_predictions(model):
    probes = [h["text"] for h in DATA["heldout"]] + DATA["gibberish"] + ["", "x" * 5000]
    restored = IntentModel.from_bytes(model.to_bytes())
    arrays, meta = model.to_arrays()
    rebuilt = IntentModel.from_arrays(arrays, json.loads(json.dumps(meta)))
    for text in probes:
        original = model.predict(text)
        assert restored.predict(text) == original
        assert rebuilt.predict(text) == original


def test_it_stored_model_is_never_unpickled(model):
    # An .npz holding an object array (what pickle would smuggle in) is refused.
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array([{"format": 1}], dtype=object))
    with pytest.raises(NLUError) as err:
        IntentModel.from_bytes(buffer.getvalue())
    assert err.value.code == "nlu_bad_model"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda a, m: a.update(labels=np.array([0, 99], dtype=np.int32)),
        lambda a, m: a.update(char_indices=a["char_indices"] + 10**6),
        lambda a, m: a.update(idf=a["idf"][:-1]),
        lambda a, m: a.update(embeddings=np.full_like(a["embeddings"], np.nan)),
        lambda a, m: m.update(format=2),
        lambda a, m: m.update(threshold="high"),
        lambda a, m: m.update(intents="order_status"),
        lambda a, m: m.pop("ngrams"),
        lambda a, m: a.pop("char_indptr"),
    ],
)
def test_it_tampered_model_is_refused(model, mutate):
    arrays, meta = model.to_arrays()
    mutate(arrays, meta)
    with pytest.raises(NLUError) as err:
        IntentModel.from_arrays(arrays, meta)
    assert err.value.code == "nlu_bad_model"


@pytest.mark.parametrize("blob", [b"", b"not an npz", b"PK\x03\x04" + b"\x00" * 50, "text"])
def test_it_garbage_blob_is_refused(blob):
    with pytest.raises(NLUError):
        IntentModel.from_bytes(blob)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "\x00\x00\x00",
        "where is my\x00 order",
        "\ud800\udfff lone surrogates \udc00",
        "\u202ewhere is my order\u200b",
        "x" * 1_000_000,
        "²³¹",
        None,
        12345,
        ["where is my order"],
        b"where is my order",
    ],
)
def test_it_hostile_input_never_raises(model, text):
    intent, confidence, scores = model.predict(text)
    assert intent is None or intent in DATA["train"]
    assert 0.0 <= confidence <= 1.0 + 1e-6
    assert set(scores) == set(DATA["train"])


def test_it_hostile_input_still_matches_when_meaning_survives(model):
    assert model.predict("where is my\x00 order").intent == "order_status"
    assert model.predict("ｗｈｅｒｅ ｉｓ ｍｙ ｏｒｄｅｒ").intent == "order_status"
    assert model.predict("\ud800reset my password\udfff").intent == "reset_password"
    # Huge input is truncated, not walked: the intent at the start still counts.
    assert model.predict("reset my password " + "a" * 1_000_000).intent == "reset_password"


def test_it_non_string_input_falls_back(model):
    for value in (None, 12345, ["where is my order"], b"where is my order"):
        assert model.predict(value).intent is None


@pytest.mark.parametrize(
    ("intents", "code"),
    [
        ({}, "nlu_no_intents"),
        ([], "nlu_no_intents"),
        ({"a": []}, "nlu_no_examples"),
        ({"a": ["   ", "\x00"]}, "nlu_no_examples"),
        ({"a": [1]}, "nlu_bad_example"),
        ({"a": ["x" * 501]}, "nlu_bad_example"),
        ({"": ["hello"]}, "nlu_bad_intent_name"),
        ({"n" * 65: ["hello"]}, "nlu_bad_intent_name"),
        ({"a\x00": ["hello"]}, "nlu_bad_intent_name"),
        ({5: ["hello"]}, "nlu_bad_intent_name"),
        ({"²": ["hello"]}, "nlu_bad_intent_name"),
        ({"order\ud800": ["hello"]}, "nlu_bad_intent_name"),
        ({"order\n": ["hello"]}, "nlu_bad_intent_name"),
        ({" order": ["hello"]}, "nlu_bad_intent_name"),
        ({"order\u202e": ["hello"]}, "nlu_bad_intent_name"),
        ({"a": "hello"}, "nlu_no_examples"),
        ({f"i{n}": ["hello"] for n in range(501)}, "nlu_too_many_intents"),
        ({"a": ["hello"] * 201}, "nlu_too_many_examples"),
    ],
)
def test_it_bad_training_data_is_refused_with_a_stable_code(intents, code):
    with pytest.raises(NLUError) as err:
        IntentModel.train(intents)
    assert err.value.code == code


def test_it_fast_char_scores_equal_scikit_learn_transform(model):
    # predict() bypasses TfidfVectorizer.transform for speed; it must compute the same thing.
    vectorizer, matrix = model._vectorizer, model._char_matrix
    probes = [h["text"] for h in DATA["heldout"]] + DATA["gibberish"] + ["zzzz", "order order"]
    for text in probes:
        cleaned = clean(text)
        similarities = (matrix @ vectorizer.transform([cleaned]).T).toarray().ravel()
        expected = np.zeros(len(model.intents))
        np.maximum.at(expected, model.labels, similarities)
        assert np.allclose(model.char_scores(cleaned), expected, atol=1e-5), text


def test_it_intent_names_of_any_script_are_accepted():
    model = IntentModel.train(
        {"Bestellung prüfen": ["wo ist meine bestellung"], "返品": ["返品したい"]}
    )
    assert model.predict("wo ist meine bestelung").intent == "Bestellung prüfen"


def test_it_model_that_inflates_beyond_the_limit_is_refused(model, monkeypatch):
    blob = model.to_bytes()
    monkeypatch.setattr(nlu, "MAX_MODEL_UNPACKED_BYTES", len(blob))  # compressed < unpacked
    with pytest.raises(NLUError) as err:
        IntentModel.from_bytes(blob)
    assert err.value.code == "nlu_bad_model"


def test_it_embedder_loads_from_the_wheel_without_network(tmp_path):
    # A fresh interpreter where every socket connect fails and HOME is empty: loading and
    # embedding must still work, and nothing is written to a download cache.
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network used')\n"
        "socket.socket.connect = refuse\n"
        "socket.create_connection = refuse\n"
        "from bots.text import embed\n"
        "v = embed(['where is my order'])\n"
        "assert v.shape == (1, 256) and abs(float((v * v).sum()) - 1) < 1e-4\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "HF_HUB_OFFLINE": "0"}
    env.pop("XDG_CACHE_HOME", None)
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_it_predicts_the_same_from_many_threads(model):
    # Worker threads share one model and one embedder: answers must not depend on timing.
    texts = [h["text"] for h in DATA["heldout"]] + DATA["gibberish"]
    expected = [model.predict(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(3):
            assert list(pool.map(model.predict, texts)) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"threshold": "0.5"},
        {"threshold": True},
        {"threshold": float("nan")},
        {"threshold": 0},
        {"threshold": 1.5},
        {"char_weight": -0.1},
        {"char_weight": None},
        {"char_weight": float("inf")},
    ],
)
def test_it_refuses_bad_parameters_with_a_stable_code(params):
    with pytest.raises(NLUError) as err:
        IntentModel.train(DATA["train"], **params)
    assert err.value.code == "nlu_bad_parameters"
