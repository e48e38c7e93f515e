"""X-Hub-Signature-256 and the hub.challenge handshake, for the three Meta kinds."""

from __future__ import annotations

import pytest

from connectors.meta import ADAPTERS
from connectors.meta.common import signature_valid
from tests.connectors.meta.support import APP_SECRET, VERIFY_TOKEN, doc, raw, signed

SECRETS = {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN, "access_token": "t"}
BODY = raw("wa_webhook_text.json")


def test_it_matches_the_published_worked_example():
    example = doc("verification_and_signature.json")["worked_example_github_docs"]
    headers = {"X-Hub-Signature-256": example["X-Hub-Signature-256"]}
    assert signature_valid(headers, example["payload"].encode(), example["secret"])
    assert not signature_valid(headers, example["payload"].encode() + b" ", example["secret"])


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
def test_it_accepts_a_good_signature(adapter):
    assert adapter.verify(signed(BODY), BODY, SECRETS)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
def test_it_reads_the_header_case_insensitively(adapter):
    (value,) = signed(BODY).values()
    assert adapter.verify({"x-hub-signature-256": value}, BODY, SECRETS)


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
@pytest.mark.parametrize(
    ("case", "headers", "body", "secrets"),
    [
        ("missing header", {}, BODY, SECRETS),
        ("another secret", signed(BODY, "not-the-secret"), BODY, SECRETS),
        ("another body", signed(BODY), BODY + b"\n", SECRETS),
        ("sha1 header only", {"X-Hub-Signature": "sha1=" + "0" * 40}, BODY, SECRETS),
        (
            "no prefix",
            {"X-Hub-Signature-256": signed(BODY)["X-Hub-Signature-256"][7:]},
            BODY,
            SECRETS,
        ),
        (
            "truncated",
            {"X-Hub-Signature-256": signed(BODY)["X-Hub-Signature-256"][:-1]},
            BODY,
            SECRETS,
        ),
        ("non-hex", {"X-Hub-Signature-256": "sha256=" + "z" * 64}, BODY, SECRETS),
        ("non-ASCII", {"X-Hub-Signature-256": "sha256=" + "\u0661" * 64}, BODY, SECRETS),
        ("lone surrogate", {"X-Hub-Signature-256": "sha256=\ud800"}, BODY, SECRETS),
        ("huge", {"X-Hub-Signature-256": "sha256=" + "a" * 100_000}, BODY, SECRETS),
        ("not text", {"X-Hub-Signature-256": b"sha256=00"}, BODY, SECRETS),
        ("no app secret", signed(BODY, ""), BODY, {**SECRETS, "app_secret": ""}),
    ],
)
def test_it_refuses_a_bad_signature(adapter, case, headers, body, secrets):
    assert adapter.verify(headers, body, secrets) is False


def challenge(**overrides):
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
def test_it_echoes_the_challenge_for_the_right_token(adapter):
    assert adapter.verify_challenge(challenge(), SECRETS) == "1158201444"


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
@pytest.mark.parametrize(
    "params",
    [
        challenge(**{"hub.verify_token": "mytoken"}),
        challenge(**{"hub.verify_token": VERIFY_TOKEN + "x"}),
        challenge(**{"hub.verify_token": None}),
        challenge(**{"hub.mode": "unsubscribe"}),
        challenge(**{"hub.mode": None}),
        challenge(**{"hub.challenge": None}),
        challenge(**{"hub.challenge": "<script>alert(1)</script> x"}),  # echoed: plain tokens only
        challenge(**{"hub.challenge": "9" * 129}),
        challenge(**{"hub.verify_token": "\ud800"}),
        {"hub_mode": "subscribe", "hub_verify_token": VERIFY_TOKEN, "hub_challenge": "1"},
    ],
)
def test_it_refuses_a_bad_challenge(adapter, params):
    assert adapter.verify_challenge(params, SECRETS) is None


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: a.kind)
def test_without_a_verify_token_every_challenge_is_refused(adapter):
    assert (
        adapter.verify_challenge(
            challenge(**{"hub.verify_token": ""}), {**SECRETS, "verify_token": ""}
        )
        is None
    )
