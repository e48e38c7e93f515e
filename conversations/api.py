"""Inbox and conversation API: what the caller may work (others answer 404)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPolicyPermission
from accounts.policy import Perm
from conversations import access, selectors, services
from conversations.models import Conversation, Inbox, Message
from parley.api import IntegerField, TextField
from parley.validation import INT64_MAX


class InboxSerializer(serializers.ModelSerializer):
    class Meta:
        model = Inbox
        fields = ["id", "name", "created_at"]
        read_only_fields = fields


class InboxListView(generics.ListAPIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE
    serializer_class = InboxSerializer

    def get_queryset(self):
        return access.inbox_list_for_user(self.request.user)


class InboxDetailView(generics.RetrieveAPIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE
    serializer_class = InboxSerializer

    @extend_schema(summary="One inbox the caller may work (404 otherwise)")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_object(self):
        return access.inbox_get_for_user(self.request.user, self.kwargs["inbox_id"])


# --- conversations ---------------------------------------------------------------------------


class ConversationSerializer(serializers.ModelSerializer):
    inbox = serializers.IntegerField(source="inbox_id")
    contact = serializers.IntegerField(source="contact_id")
    assignee = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = [
            "id",
            "inbox",
            "contact",
            "status",
            "snoozed_until",
            "assignee",
            "labels",
            "priority",
            "handler",
            "unread",
            "last_activity_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_assignee(self, c) -> str | None:
        return c.assignee.email if c.assignee_id else None


class MessageSerializer(serializers.ModelSerializer):
    body = serializers.SerializerMethodField()
    sender_user = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "kind",
            "direction",
            "sender",
            "sender_user",
            "body",
            "attachments",
            "external_id",
            "delivery",
            "delivery_error",
            "created_at",
        ]
        read_only_fields = fields

    def get_body(self, m) -> str:
        return services.body_of(m)

    def get_sender_user(self, m) -> str | None:
        return m.sender_user.email if m.sender_user_id else None


class ConversationPage(serializers.Serializer):
    results = ConversationSerializer(many=True)
    next_cursor = serializers.CharField(allow_null=True)


class ConversationQuery(serializers.Serializer):
    scope = serializers.ChoiceField(choices=selectors.FILTERS, default="all")
    status = serializers.ChoiceField(choices=[*Conversation.Status.values, "any"], default="open")
    inbox = IntegerField(required=False, min_value=1)
    label = TextField(required=False, max_length=40, default="")
    cursor = TextField(required=False, max_length=200, default="")
    page_size = IntegerField(
        required=False, min_value=1, max_value=selectors.MAX_PAGE_SIZE, default=selectors.PAGE_SIZE
    )


class ConversationListView(APIView):
    """Conversations of the inboxes the caller works (keyset pages, at most 100 a page)."""

    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE

    @extend_schema(
        parameters=[ConversationQuery],
        responses=ConversationPage,
        summary="List and filter conversations",
        operation_id="conversations_list",
    )
    def get(self, request):
        q = ConversationQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        d = q.validated_data
        flt = selectors.ConversationFilter(
            scope=d["scope"], status=d["status"], inbox=d.get("inbox"), label=d["label"].lower()
        )
        rows, cursor = selectors.conversation_page(
            request.user, flt, cursor=d["cursor"], size=d["page_size"]
        )
        return Response(
            {"results": ConversationSerializer(rows, many=True).data, "next_cursor": cursor}
        )


class ConversationDetailView(APIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE

    @extend_schema(
        responses=ConversationSerializer, summary="One conversation (404 unless visible)"
    )
    def get(self, request, conversation_id: int):
        return Response(
            ConversationSerializer(
                access.conversation_get_for_user(request.user, conversation_id)
            ).data
        )


class AttachmentSerializer(serializers.Serializer):
    url = TextField(max_length=1000)
    type = TextField(max_length=100, required=False, allow_blank=True, default="")
    size = IntegerField(min_value=0, max_value=100 * 2**20, required=False, default=0)


class ReplySerializer(serializers.Serializer):
    body = TextField(max_length=services.MAX_BODY, allow_blank=True, default="")
    private = serializers.BooleanField(default=False)
    attachments = serializers.ListField(
        child=AttachmentSerializer(),
        required=False,
        default=list,
        max_length=services.MAX_ATTACHMENTS,
    )


class MessageQuery(serializers.Serializer):
    after = IntegerField(
        required=False,
        min_value=0,
        max_value=INT64_MAX,
        default=0,
        help_text="only messages with a larger id",
    )
    limit = IntegerField(
        required=False,
        min_value=1,
        max_value=selectors.THREAD_LIMIT,
        default=50,
        help_text=f"at most {selectors.THREAD_LIMIT}",
    )


class MessageListView(APIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE

    @extend_schema(
        parameters=[MessageQuery],
        responses=MessageSerializer(many=True),
        summary="Messages and notes of a conversation, oldest first",
    )
    def get(self, request, conversation_id: int):
        conversation = access.conversation_get_for_user(request.user, conversation_id)
        q = MessageQuery(data=request.query_params)
        q.is_valid(raise_exception=True)
        rows = selectors.thread_messages(
            conversation, after=q.validated_data["after"], limit=q.validated_data["limit"]
        )
        return Response(MessageSerializer(rows, many=True).data)

    @extend_schema(
        request=ReplySerializer,
        responses={201: MessageSerializer},
        summary="Reply (sent through the channel) or add a private note",
    )
    def post(self, request, conversation_id: int):
        access.conversation_get_for_user(request.user, conversation_id)  # 404 before anything else
        data = ReplySerializer(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        if d["private"]:
            message = services.note_add(
                by=request.user, conversation_id=conversation_id, body=d["body"]
            )
        else:
            message = services.reply_send(
                by=request.user,
                conversation_id=conversation_id,
                body=d["body"],
                attachments=d["attachments"],
            )
        return Response(MessageSerializer(message).data, status=201)


class AssignSerializer(serializers.Serializer):
    assignee = IntegerField(allow_null=True, min_value=1)


class AssignView(APIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE

    @extend_schema(
        request=AssignSerializer,
        responses=ConversationSerializer,
        summary="Assign (or with null unassign)",
    )
    def post(self, request, conversation_id: int):
        access.conversation_get_for_user(request.user, conversation_id)  # 404 before anything else
        data = AssignSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignee = None
        if data.validated_data["assignee"] is not None:
            assignee = get_user_model().objects.filter(pk=data.validated_data["assignee"]).first()
            if assignee is None:
                raise ValidationError({"assignee": "Assign to someone who works this inbox."})
        conversation = services.assign(
            by=request.user, conversation_id=conversation_id, assignee=assignee
        )
        return Response(ConversationSerializer(conversation).data)


class ResolveView(APIView):
    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE

    @extend_schema(request=None, responses=ConversationSerializer, summary="Resolve")
    def post(self, request, conversation_id: int):
        return Response(
            ConversationSerializer(
                services.resolve(by=request.user, conversation_id=conversation_id)
            ).data
        )


class ContactResult(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class ContactSearchView(APIView):
    """Exact lookup by phone or e-mail; at most 20 rows; audited. No bulk export."""

    permission_classes = [HasPolicyPermission]
    required_permission = Perm.INBOX_USE

    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True)],
        responses=ContactResult(many=True),
        summary="Find a contact by phone or e-mail",
    )
    def get(self, request):
        q = request.query_params.get("q", "")
        if not q.strip():
            raise ValidationError({"q": "Give a phone number or an e-mail address."})
        found = services.contact_search(by=request.user, query=q)
        return Response(
            [{"id": c.pk, "name": services.contact_pii(c).get("name", "")} for c in found]
        )
