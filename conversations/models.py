"""Contacts (more of the inbox arrives with the conversations issue).

Contact PII is encrypted per field, bound to the row; phone and e-mail also
carry blind indexes (HMAC under the tenant's blind-index key) so a contact is
found by equality without decrypting anyone.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models

from parley.keyring import fields


class Contact(models.Model):
    id = models.BigAutoField(primary_key=True)
    name_ct = models.BinaryField(null=True)
    phone_ct = models.BinaryField(null=True)
    email_ct = models.BinaryField(null=True)
    phone_bi = models.CharField(max_length=32, blank=True, db_index=True)
    email_bi = models.CharField(max_length=32, blank=True, db_index=True)
    # Non-identifying facts an integration sets (plan, locale…); never PII.
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"contact #{self.pk}"

    def allocate_pk(self) -> int:
        """The ciphertexts are bound to the row id, so the id comes first."""
        if self.pk is None:
            self.pk = fields.reserve_ids(self._meta.db_table)[0]
        return self.pk


class ContactIdentity(models.Model):
    """A contact's id on one channel (a WhatsApp number's wa_id, an API user id…)."""

    id = models.BigAutoField(primary_key=True)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="identities")
    channel = models.ForeignKey(
        "connectors.Channel", on_delete=models.CASCADE, related_name="identities"
    )
    external_id = models.CharField(max_length=128)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["channel", "external_id"], name="identity_per_channel")
        ]

    def __str__(self) -> str:
        return f"identity #{self.pk}"


class Inbox(models.Model):
    """Where conversations of one channel land. Agents work an inbox they are members of.

    Membership is a django-guardian object permission (``work_inbox``) held by
    the user; owners and admins see every inbox (see ``conversations.access``).
    """

    class Assignment(models.TextChoices):
        MANUAL = "manual", "Manual"
        ROUND_ROBIN = "round_robin", "Round-robin among online agents"

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=80, unique=True)
    channel = models.OneToOneField(
        "connectors.Channel", null=True, blank=True, on_delete=models.PROTECT, related_name="inbox"
    )
    assignment = models.CharField(
        max_length=12, choices=Assignment.choices, default=Assignment.MANUAL
    )
    rr_last_user_id = models.BigIntegerField(null=True, blank=True, editable=False)
    # {"mon": [["09:00", "17:00"]], ...} in ``timezone``; empty: always open.
    business_hours = models.JSONField(default=dict, blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    auto_reply = models.TextField(max_length=1000, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        permissions = [("work_inbox", "Work the conversations of this inbox")]
        default_permissions = ()

    def __str__(self) -> str:
        return self.name


class Conversation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        PENDING = "pending", "Pending"
        SNOOZED = "snoozed", "Snoozed"
        RESOLVED = "resolved", "Resolved"

    class Priority(models.IntegerChoices):
        NONE = 0, "None"
        LOW = 1, "Low"
        MEDIUM = 2, "Medium"
        HIGH = 3, "High"
        URGENT = 4, "Urgent"

    class Handler(models.TextChoices):
        BOT = "bot", "Bot"
        HUMAN = "human", "Human"

    id = models.BigAutoField(primary_key=True)
    inbox = models.ForeignKey(Inbox, on_delete=models.PROTECT, related_name="conversations")
    contact = models.ForeignKey(Contact, on_delete=models.PROTECT, related_name="conversations")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    snoozed_until = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    labels = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, default=Priority.NONE)
    handler = models.CharField(max_length=5, choices=Handler.choices, default=Handler.HUMAN)
    unread = models.PositiveIntegerField(default=0)
    last_activity_at = models.DateTimeField(db_index=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_activity_at", "-id"]
        indexes = [
            models.Index(
                fields=["inbox", "status", "-last_activity_at", "-id"], name="conv_inbox_status"
            ),
            models.Index(fields=["inbox", "-last_activity_at", "-id"], name="conv_inbox_activity"),
            models.Index(
                fields=["assignee", "status", "-last_activity_at", "-id"], name="conv_assignee"
            ),
            # Owners and admins list across inboxes, by status or not.
            models.Index(
                fields=["status", "-last_activity_at", "-id"], name="conv_status_activity"
            ),
            models.Index(fields=["-last_activity_at", "-id"], name="conv_activity"),
            GinIndex(fields=["labels"], name="conv_labels"),
        ]

    def __str__(self) -> str:
        return f"conversation #{self.pk}"


# What the channel layer writes on a reply the channel refused because the
# customer's 24-hour window is closed (WhatsApp 131047): only a template may go.
# Kept here so the inbox can recognise it without importing the channel layer.
OUTSIDE_WINDOW_ERROR = (
    "This customer last wrote more than 24 hours ago: WhatsApp only allows a template message now."
)


class Message(models.Model):
    """One message or private note; the body is encrypted, bound to its row."""

    class Direction(models.TextChoices):
        IN = "in", "Incoming"
        OUT = "out", "Outgoing"

    class Sender(models.TextChoices):
        CONTACT = "contact", "Contact"
        AGENT = "agent", "Agent"
        BOT = "bot", "Bot"
        SYSTEM = "system", "System"

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        NOTE = "note", "Private note"

    class Delivery(models.TextChoices):
        NONE = "", "—"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        FAILED = "failed", "Failed"

    id = models.BigAutoField(primary_key=True)
    # Indexed by msg_conversation (conversation, id), which also serves the foreign key.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    inbox_id_denorm = models.BigIntegerField()  # for the per-channel idempotency key
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.MESSAGE)
    direction = models.CharField(max_length=3, choices=Direction.choices)
    sender = models.CharField(max_length=8, choices=Sender.choices)
    sender_user = models.ForeignKey(
        "accounts.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    body_ct = models.BinaryField(null=True)
    attachments = models.JSONField(default=list, blank=True)  # [{"url", "type", "size"}]
    external_id = models.CharField(max_length=128, blank=True)
    delivery = models.CharField(max_length=9, choices=Delivery.choices, blank=True, default="")
    delivery_error = models.CharField(max_length=300, blank=True)
    delivery_attempts = models.PositiveSmallIntegerField(default=0)
    # When the channel layer tries again after a transient failure (None: not waiting).
    delivery_next_at = models.DateTimeField(null=True, blank=True)
    # The channel layer's record of its send attempts, the newest last (at most
    # DELIVERY_LOG_MAX): {"attempt", "at", "status", "error", "ms", "network"}.
    # Statuses and error class names only: never a body, a header or a token.
    delivery_log = models.JSONField(default=list, blank=True)
    # Set on a reply that is a pre-approved channel template, not text:
    # {"name", "language"} (see services.template_send); None for every other message.
    template = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["conversation", "id"], name="msg_conversation")]
        constraints = [
            models.UniqueConstraint(
                fields=["inbox_id_denorm", "external_id"],
                condition=~models.Q(external_id=""),
                name="msg_external_id_per_channel",
            )
        ]

    def __str__(self) -> str:
        return f"message #{self.pk}"

    @property
    def awaits_template(self) -> bool:
        """A reply the channel refused because only a template may go now."""
        return (
            self.direction == self.Direction.OUT
            and self.delivery == self.Delivery.FAILED
            and self.delivery_error == OUTSIDE_WINDOW_ERROR
        )


class CannedResponse(models.Model):
    id = models.BigAutoField(primary_key=True)
    shortcut = models.SlugField(max_length=40, unique=True)
    title = models.CharField(max_length=120)
    body = models.TextField(max_length=2000)

    class Meta:
        ordering = ["shortcut"]

    def __str__(self) -> str:
        return f"/{self.shortcut}"
