"""The demo tenant's bot (``parley_demo``): published through the services, valid,
idempotent, and it does what the README promises a newcomer in the web chat."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from bots import engine, knowledge, services
from bots.demo import DEMO_FLOW, demo_bot_ensure, demo_graph
from bots.models import Flow, FlowVersion, KnowledgeArticle
from conversations import access

pytestmark = pytest.mark.django_db


def _ensure(tenant):
    owner = get_user_model().objects.get(email=f"owner@{tenant.slug}.test")
    inbox = access.inbox_create(by=owner, name="Demo chat inbox")
    return owner, demo_bot_ensure(by=owner, inbox=inbox), inbox


def _run(owner, flow, *messages):
    return services.flow_simulate(by=owner, flow=flow, messages=list(messages))


def test_the_demo_bot_is_published_valid_and_seeded_once(acme):
    with tenant_context(acme):
        owner, flow, inbox = _ensure(acme)
        assert list(flow.inboxes.values_list("pk", flat=True)) == [inbox.pk]
        live = FlowVersion.objects.get(pk=flow.live_version_id)
        assert live.status == FlowVersion.Status.PUBLISHED
        assert services.flow_validate(by=owner, flow=flow, graph=live.graph) == []
        assert AuditEvent.objects.filter(action="flow.published", target_id=str(flow.pk)).exists()
        articles = KnowledgeArticle.objects.count()
        assert articles >= 4 and not KnowledgeArticle.objects.filter(flagged=True).exists()
        # Again (every `make run` seeds): nothing doubles, nothing is republished.
        assert demo_bot_ensure(by=owner, inbox=inbox).pk == flow.pk
        assert Flow.objects.filter(name=DEMO_FLOW).count() == 1
        assert KnowledgeArticle.objects.count() == articles
        assert FlowVersion.objects.filter(flow=flow, status="published").count() == 1


def test_the_demo_bot_greets_answers_asks_and_hands_off(acme):
    with tenant_context(acme):
        owner, flow, _ = _ensure(acme)
        # A greeting (with a typo), then a question the knowledge base answers.
        sim = _run(owner, flow, "helo", "how do I retrun an item?")
        bot = [t["text"] for t in sim["transcript"] if t["from"] == "bot"]
        assert "Acme's assistant" in bot[0]
        assert any("30 days" in text for text in bot), bot
        assert sim["outcome"] == "waiting"
        # An order question asks for the number and hands off with it.
        sim = _run(owner, flow, "where is my ordr", "A-12345")
        assert sim["variables"].get("order") == "A-12345"
        assert sim["outcome"] == "handoff"
        assert [p["node"] for p in sim["path"] if p["node"]][-1] == "order_handoff"
        # Asking for a person hands off at once.
        sim = _run(owner, flow, "I want to talk to a real person")
        assert sim["outcome"] == "handoff"
        # A bad order number twice, then the fallback: a person.
        sim = _run(owner, flow, "track my parcel", "no idea", "still no", "nope")
        assert sim["outcome"] == "handoff"
        # Asked for the number, the customer types "agent": a person, at once.
        sim = _run(owner, flow, "where is my order", "agent")
        assert sim["outcome"] == "handoff"
        bot = [t["text"] for t in sim["transcript"] if t["from"] == "bot"]
        assert bot[-1] == "I'm connecting you to a person; they will answer here."
        assert not any("doesn't look like an order number" in text for text in bot)


def test_gibberish_gets_a_polite_word_and_a_person(acme):
    with tenant_context(acme):
        owner, flow, _ = _ensure(acme)
        sim = _run(owner, flow, "asdfgh qwerty zxcv")
        bot = [t["text"] for t in sim["transcript"] if t["from"] == "bot"]
        assert bot == ["I'm not sure about that one. Let me find a person who can help."]
        assert sim["outcome"] == "handoff"


def test_the_simulator_takes_articles_whose_tags_are_a_list():
    # Article.tags is a tuple, but a caller passing a list must not fail the node.
    articles = [knowledge.Article(id=1, title="Returns", body="Return within 30 days.", tags=["r"])]
    sim = engine.simulate(demo_graph(), ["how do I return an item"], articles=articles)
    assert sim.as_dict()["outcome"] != "failed"
