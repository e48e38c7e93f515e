"""Bot flows, their versions, the knowledge base and the runs of the engine.

A flow's graph lives in a ``FlowVersion`` as JSON (its shape: ``docs/bots-flows.md``).
Drafts are edited; publishing freezes a version (a database trigger refuses any
change to the graph, number or author of a version that is no longer a draft);
rollback publishes a new version with an old graph, so the history only grows.

A ``FlowRun`` is one conversation's walk through one version. Its variables are
what the customer typed (names, e-mails…), so they are encrypted, bound to the
row, like message bodies.
"""

from __future__ import annotations

import pgtrigger
from django.contrib.postgres.fields import ArrayField
from django.db import models

from parley.keyring import fields


class Flow(models.Model):
    """A bot: which inboxes it serves, what starts it, and its live version."""

    class Trigger(models.TextChoices):
        NEW_CONVERSATION = "new_conversation", "A new conversation"
        KEYWORD = "keyword", "A keyword in the message"
        INTENT = "intent", "An intent of the message"

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=80, unique=True)
    description = models.CharField(max_length=300, blank=True)
    inboxes = models.ManyToManyField("conversations.Inbox", related_name="flows", blank=True)
    trigger = models.CharField(
        max_length=20, choices=Trigger.choices, default=Trigger.NEW_CONVERSATION
    )
    # KEYWORD: any of these, matched on whole words, case- and accent-insensitively.
    keywords = ArrayField(models.CharField(max_length=60), default=list, blank=True)
    # INTENT: the name of an intent of the live version's intent routers.
    trigger_intent = models.CharField(max_length=60, blank=True)
    # The version new runs start on; None until the first publish.
    live_version = models.ForeignKey(
        "FlowVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FlowVersion(models.Model):
    """One graph of a flow: the draft, a published version, or an archived one."""

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        PUBLISHED = "published", "Published"
        ARCHIVED = "archived", "Archived"

    class Training(models.TextChoices):
        NONE = "none", "No intents"
        PENDING = "pending", "Training"
        READY = "ready", "Trained"
        FAILED = "failed", "Training failed"

    id = models.BigAutoField(primary_key=True)
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    graph = models.JSONField(default=dict)
    # What this version is about (e.g. "rollback to v3"); written by the service.
    note = models.CharField(max_length=200, blank=True)
    author = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The intent model trained from this version's routers at publish, in the
    # worker: bots.nlu.IntentModel.to_bytes() (.npz arrays and JSON, never pickle).
    training = models.CharField(max_length=8, choices=Training.choices, default=Training.NONE)
    intent_model = models.BinaryField(null=True, blank=True)

    class Meta:
        ordering = ["flow", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="flowversion_number"),
            # At most one draft and one published version per flow.
            models.UniqueConstraint(
                fields=["flow"],
                condition=models.Q(status="draft"),
                name="flowversion_one_draft",
            ),
            models.UniqueConstraint(
                fields=["flow"],
                condition=models.Q(status="published"),
                name="flowversion_one_published",
            ),
        ]
        triggers = [
            # A version that left the draft state is frozen: its status may move
            # (published <-> archived) and its trained model may be filled in, but
            # its graph, number, flow and author never change.
            pgtrigger.Protect(
                name="flowversion_frozen",
                operation=pgtrigger.Update,
                condition=pgtrigger.Q(old__status__in=["published", "archived"])
                & (
                    pgtrigger.Q(new__graph__df=pgtrigger.F("old__graph"))
                    | pgtrigger.Q(new__number__df=pgtrigger.F("old__number"))
                    | pgtrigger.Q(new__flow_id__df=pgtrigger.F("old__flow_id"))
                    | pgtrigger.Q(new__status="draft")
                ),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flow_id} v{self.number}"


class KnowledgeArticle(models.Model):
    """A tenant's own article: the only thing knowledge-base and AI answers may draw on.

    Screened at save (bots.guardrails.article_screen): an article with
    instruction-like text is kept but ``flagged`` and never used as context.
    """

    id = models.BigAutoField(primary_key=True)
    title = models.CharField(max_length=200)
    body = models.TextField(max_length=20000)
    tags = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    published = models.BooleanField(default=True)
    flagged = models.BooleanField(default=False)
    # Short codes from the screen (e.g. "instruction_override"), never the text.
    flag_reasons = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    author = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]

    def __str__(self) -> str:
        return self.title


class FlowRun(models.Model):
    """One conversation's walk through one flow version, persisted after every step."""

    class Outcome(models.TextChoices):
        RUNNING = "", "Running"
        COMPLETED = "completed", "Completed"
        HANDOFF = "handoff", "Handed to a human"
        FAILED = "failed", "Failed (handed to a human)"
        STEP_CAP = "step_cap", "Stopped by the step cap (handed to a human)"
        ENDED = "ended", "Ended by an agent"

    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(
        "conversations.Conversation", on_delete=models.CASCADE, related_name="flow_runs"
    )
    version = models.ForeignKey(FlowVersion, on_delete=models.PROTECT, related_name="runs")
    # The node the run stands on: an ask waiting for the answer, or the next to run.
    node = models.CharField(max_length=64, blank=True)
    # Engine state that is not customer data: retries of the current ask, etc.
    state = models.JSONField(default=dict, blank=True)
    # The run's variables, JSON, encrypted with the tenant's key, bound to this row.
    variables_ct = models.BinaryField(null=True)
    steps = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True, default="")
    # Why a run handed off or failed: a short code, never customer text.
    reason = models.CharField(max_length=60, blank=True)
    started_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["conversation"],
                condition=models.Q(ended_at__isnull=True),
                name="flowrun_one_open_per_conversation",
            )
        ]

    def __str__(self) -> str:
        return f"run #{self.pk}"

    def allocate_pk(self) -> int:
        """The variables are bound to the row id, so the id comes first."""
        if self.pk is None:
            self.pk = fields.reserve_ids(self._meta.db_table)[0]
        return self.pk


class AllowedHost(models.Model):
    """A host HTTP-request nodes may call: the tenant's allow-list.

    Kept by owners and admins (Perm.CONNECTORS_MANAGE), not by marketers: a flow
    author must not be able to open a way out for customer data.
    """

    id = models.BigAutoField(primary_key=True)
    # A lower-case DNS name (IDNA) or an IP literal, no port, no scheme.
    host = models.CharField(max_length=253, unique=True)
    note = models.CharField(max_length=200, blank=True)
    added_by = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["host"]

    def __str__(self) -> str:
        return self.host
