"""Bot flows, versions, the simulator, knowledge articles and the HTTP allow-list.

The editor page calls these with its session (CSRF header); integrations with a JWT.
Refusals are JSON ``{"code", "detail"}``; a publish refused for problems adds
``problems`` (each ``{"node", "code", "message"}``), a save that lost a race adds the
draft's current ``updated_at`` (409 ``draft_conflict``).
"""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import HasPolicyPermission, StepUpFresh
from accounts.policy import Perm
from bots import selectors, services
from bots.models import AllowedHost, Flow, FlowVersion, KnowledgeArticle
from parley.api import IntegerField, Pagination, StrictBooleanField, StringField
from parley.validation import INT64_MAX, ascii_int


class GraphField(serializers.JSONField):
    """A JSON object (its nodes and edges are checked by the service)."""

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("The graph is a JSON object.", code="invalid")
        return data


# --- serializers -----------------------------------------------------------------------------


class RefusalSerializer(serializers.Serializer):
    """A refusal: a stable ``code``, a ``detail`` for people (and ``updated_at`` for a
    ``draft_conflict``)."""

    code = serializers.CharField()
    detail = serializers.CharField()
    updated_at = serializers.DateTimeField(required=False)


class VersionRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    published_at = serializers.DateTimeField(allow_null=True)


class DraftRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    updated_at = serializers.DateTimeField()


class FlowSerializer(serializers.ModelSerializer):
    inboxes = serializers.SerializerMethodField()
    live_version = serializers.SerializerMethodField()
    draft = serializers.SerializerMethodField()

    class Meta:
        model = Flow
        fields = [
            "id",
            "name",
            "description",
            "trigger",
            "keywords",
            "trigger_intent",
            "inboxes",
            "enabled",
            "live_version",
            "draft",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_inboxes(self, flow) -> list[int]:
        return sorted(i.pk for i in flow.inboxes.all())

    @extend_schema_field(VersionRefSerializer(allow_null=True))
    def get_live_version(self, flow) -> dict | None:
        v = flow.live_version
        return {"id": v.pk, "number": v.number, "published_at": v.published_at} if v else None

    @extend_schema_field(DraftRefSerializer(allow_null=True))
    def get_draft(self, flow) -> dict | None:
        drafts = getattr(flow, "drafts", None)
        d = drafts[0] if drafts else (None if drafts is not None else selectors.flow_draft(flow))
        return {"id": d.pk, "number": d.number, "updated_at": d.updated_at} if d else None


class FlowWriteSerializer(serializers.Serializer):
    name = StringField(max_length=80)
    description = StringField(max_length=300, required=False, allow_blank=True)
    trigger = serializers.ChoiceField(choices=Flow.Trigger.values, required=False)
    keywords = serializers.ListField(
        child=StringField(max_length=60), required=False, max_length=services.MAX_KEYWORDS
    )
    trigger_intent = StringField(max_length=40, required=False, allow_blank=True)
    inboxes = serializers.ListField(
        child=IntegerField(min_value=1, max_value=INT64_MAX),
        required=False,
        max_length=services.MAX_INBOXES,
    )
    enabled = StrictBooleanField(required=False)


class DraftSerializer(serializers.ModelSerializer):
    class Meta:
        model = FlowVersion
        fields = ["id", "number", "graph", "updated_at"]
        read_only_fields = fields


class ProblemSerializer(serializers.Serializer):
    node = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class DraftSavedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    number = serializers.IntegerField()
    updated_at = serializers.DateTimeField()
    problems = ProblemSerializer(many=True)


class DraftWriteSerializer(serializers.Serializer):
    graph = GraphField()
    base_updated_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="The draft's updated_at as loaded: a newer draft is a 409 draft_conflict.",
    )


class GraphOptionalSerializer(serializers.Serializer):
    graph = GraphField(required=False, help_text="Default: the draft.")


class ValidationResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    problems = ProblemSerializer(many=True)


class VersionSerializer(serializers.ModelSerializer):
    author = serializers.SerializerMethodField()
    published_by = serializers.SerializerMethodField()

    class Meta:
        model = FlowVersion
        fields = [
            "id",
            "number",
            "status",
            "note",
            "author",
            "published_by",
            "created_at",
            "updated_at",
            "published_at",
            "training",
        ]
        read_only_fields = fields

    def get_author(self, v) -> str | None:
        return v.author.email if v.author_id else None

    def get_published_by(self, v) -> str | None:
        return v.published_by.email if v.published_by_id else None


class VersionDetailSerializer(VersionSerializer):
    class Meta(VersionSerializer.Meta):
        fields = [*VersionSerializer.Meta.fields, "graph"]
        read_only_fields = fields


class VersionEnvelopeSerializer(serializers.Serializer):
    version = VersionSerializer()


class PublishSerializer(serializers.Serializer):
    note = StringField(max_length=200, required=False, allow_blank=True, default="")


class RollbackSerializer(serializers.Serializer):
    number = IntegerField(min_value=1, max_value=2**31 - 1)


class DiffChangeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["added", "removed", "changed"])
    node = serializers.CharField()
    type = serializers.CharField(allow_null=True)
    detail = serializers.CharField()
    keys = serializers.ListField(child=serializers.CharField(), required=False)


class EdgeSerializer(serializers.Serializer):
    to = serializers.CharField()
    port = serializers.CharField()

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = serializers.CharField()
        return fields


class DiffSerializer(serializers.Serializer):
    old = serializers.IntegerField()
    new = serializers.CharField(help_text='A version number, or "draft".')
    changes = DiffChangeSerializer(many=True)
    edges_added = EdgeSerializer(many=True)
    edges_removed = EdgeSerializer(many=True)


class DiffQuery(serializers.Serializer):
    against = StringField(
        required=False,
        default="draft",
        max_length=12,
        help_text='The version to compare with: a number, or "draft" (the default).',
    )


class SimulateSerializer(serializers.Serializer):
    messages = serializers.ListField(
        child=StringField(max_length=services.MAX_SIM_MESSAGE_CHARS, allow_blank=True),
        max_length=services.MAX_SIM_MESSAGES,
    )
    graph = GraphField(required=False, help_text="Default: the draft.")


SimulationSerializer = inline_serializer(
    "Simulation",
    fields={
        "transcript": serializers.ListField(child=serializers.DictField()),
        "path": serializers.ListField(child=serializers.DictField()),
        "variables": serializers.DictField(),
        "outcome": serializers.CharField(),
        "reason": serializers.CharField(),
    },
)


class ArticleSerializer(serializers.ModelSerializer):
    class Meta:
        model = KnowledgeArticle
        fields = [
            "id",
            "title",
            "body",
            "tags",
            "published",
            "flagged",
            "flag_reasons",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ArticleWriteSerializer(serializers.Serializer):
    title = StringField(max_length=200)
    body = StringField(max_length=20000)
    tags = serializers.ListField(
        child=StringField(max_length=40), required=False, max_length=services.MAX_TAGS
    )
    published = StrictBooleanField(required=False)


class ArticleQuery(serializers.Serializer):
    q = StringField(required=False, default="", allow_blank=True, max_length=200)


class AllowedHostSerializer(serializers.ModelSerializer):
    added_by = serializers.SerializerMethodField()

    class Meta:
        model = AllowedHost
        fields = ["id", "host", "note", "added_by", "created_at"]
        read_only_fields = fields

    def get_added_by(self, h) -> str | None:
        return h.added_by.email if h.added_by_id else None


class AllowedHostWriteSerializer(serializers.Serializer):
    host = StringField(
        max_length=300,
        help_text="A host name (IDNA is applied) or a public IP; a URL is cut to its host.",
    )
    note = StringField(max_length=200, required=False, allow_blank=True, default="")


class AllowedHostDeleteSerializer(serializers.Serializer):
    host = StringField(max_length=300)


def _page(serializer, name: str):
    """The OpenAPI shape of a keyset page of ``serializer`` (parley.api.Pagination)."""
    return inline_serializer(
        name,
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


# --- views -----------------------------------------------------------------------------------


class BotsView(APIView):
    """FlowError from a service → JSON with its code (and problems / updated_at)."""

    permission_classes = [HasPolicyPermission]
    required_permission = Perm.FLOWS_EDIT

    def handle_exception(self, exc):
        if isinstance(exc, services.FlowError):
            return Response(
                {"code": exc.code, "detail": exc.message, **exc.extra}, status=exc.status
            )
        return super().handle_exception(exc)

    def _flow(self, flow_id: int) -> Flow:
        return selectors.flow_get(by=self.request.user, flow_id=flow_id)

    def _paginate(self, rows, serializer):
        paginator = Pagination()
        page = paginator.paginate_queryset(rows, self.request, view=self)
        return paginator.get_paginated_response(serializer(page, many=True).data)


class FlowListView(BotsView):
    @extend_schema(
        responses=_page(FlowSerializer, "FlowPage"),
        summary="Bot flows (keyset pages)",
        operation_id="flows_list",
    )
    def get(self, request):
        return self._paginate(selectors.flow_list(by=request.user), FlowSerializer)

    @extend_schema(
        request=FlowWriteSerializer,
        responses={201: FlowSerializer},
        summary="Create a flow (with its draft v1: one start node)",
    )
    def post(self, request):
        body = FlowWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        flow = services.flow_create(by=request.user, **body.validated_data)
        return Response(FlowSerializer(self._flow(flow.pk)).data, status=status.HTTP_201_CREATED)


class FlowDetailView(BotsView):
    @extend_schema(responses=FlowSerializer, summary="One flow")
    def get(self, request, flow_id: int):
        return Response(FlowSerializer(self._flow(flow_id)).data)

    @extend_schema(
        request=FlowWriteSerializer(partial=True),
        responses=FlowSerializer,
        summary="Change a flow's name, description, inboxes, trigger or enabled",
    )
    def patch(self, request, flow_id: int):
        flow = self._flow(flow_id)
        body = FlowWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        services.flow_update(by=request.user, flow=flow, **body.validated_data)
        return Response(FlowSerializer(self._flow(flow.pk)).data)

    @extend_schema(responses={204: None}, summary="Delete a flow (409 flow_in_use once it has run)")
    def delete(self, request, flow_id: int):
        services.flow_delete(by=request.user, flow=self._flow(flow_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DraftView(BotsView):
    @extend_schema(
        responses=DraftSerializer,
        summary="The draft (after a publish, a new one copied from the live version)",
    )
    def get(self, request, flow_id: int):
        draft = services.draft_get_or_create(by=request.user, flow=self._flow(flow_id))
        return Response(DraftSerializer(draft).data)

    @extend_schema(
        request=DraftWriteSerializer,
        responses={200: DraftSavedSerializer, 409: RefusalSerializer},
        summary="Autosave the draft (kept even with problems; 409 draft_conflict when stale)",
    )
    def put(self, request, flow_id: int):
        flow = self._flow(flow_id)
        body = DraftWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        draft, problems = services.draft_save(
            by=request.user,
            flow=flow,
            graph=body.validated_data["graph"],
            base_updated_at=body.validated_data.get("base_updated_at"),
        )
        return Response(
            DraftSavedSerializer(
                {
                    "id": draft.pk,
                    "number": draft.number,
                    "updated_at": draft.updated_at,
                    "problems": problems,
                }
            ).data
        )


class ValidateView(BotsView):
    @extend_schema(
        request=GraphOptionalSerializer,
        responses=ValidationResultSerializer,
        summary="Publish validation of a graph (default: the draft); nothing is saved",
    )
    def post(self, request, flow_id: int):
        flow = self._flow(flow_id)
        body = GraphOptionalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        problems = services.flow_validate(
            by=request.user, flow=flow, graph=body.validated_data.get("graph")
        )
        return Response({"ok": not problems, "problems": problems})


class PublishView(BotsView):
    @extend_schema(
        request=PublishSerializer,
        responses={200: VersionEnvelopeSerializer, 409: RefusalSerializer},
        summary="Publish the draft (400 flow_invalid with its problems)",
    )
    def post(self, request, flow_id: int):
        flow = self._flow(flow_id)
        body = PublishSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.flow_publish(by=request.user, flow=flow, **body.validated_data)
        return Response({"version": VersionSerializer(version).data})


class RollbackView(BotsView):
    @extend_schema(
        request=RollbackSerializer,
        responses={201: VersionEnvelopeSerializer},
        summary="Publish a NEW version with the graph of version `number`",
    )
    def post(self, request, flow_id: int):
        flow = self._flow(flow_id)
        body = RollbackSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        version = services.flow_rollback(
            by=request.user, flow=flow, number=body.validated_data["number"]
        )
        return Response(
            {"version": VersionSerializer(version).data}, status=status.HTTP_201_CREATED
        )


class VersionListView(BotsView):
    @extend_schema(
        responses=VersionSerializer(many=True), summary="A flow's versions, newest first"
    )
    def get(self, request, flow_id: int):
        flow = self._flow(flow_id)
        return Response(VersionSerializer(selectors.flow_versions(flow), many=True).data)


class VersionDetailView(BotsView):
    @extend_schema(responses=VersionDetailSerializer, summary="One version with its graph")
    def get(self, request, flow_id: int, number: int):
        version = selectors.flow_version(self._flow(flow_id), number)
        return Response(VersionDetailSerializer(version).data)


class VersionDiffView(BotsView):
    @extend_schema(
        parameters=[DiffQuery],
        responses=DiffSerializer,
        summary="What changed from version `number` to `against` (a number or the draft)",
    )
    def get(self, request, flow_id: int, number: int):
        flow = self._flow(flow_id)
        query = DiffQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        against = query.validated_data["against"].strip().lower()
        old = selectors.flow_version(flow, number)
        if against == "draft":
            new = selectors.flow_draft(flow)
            if new is None:
                raise services.FlowError(
                    "no_draft", "The flow has no draft to compare with.", status=404
                )
        else:
            new_number = ascii_int(against)
            if new_number is None:
                raise serializers.ValidationError(
                    {"against": ['A version number or "draft".']}, code="invalid"
                )
            new = selectors.flow_version(flow, new_number)
        diff = selectors.graph_diff(old.graph, new.graph)
        return Response(
            {"old": old.number, "new": "draft" if against == "draft" else new.number, **diff}
        )


class SimulateView(BotsView):
    @extend_schema(
        request=SimulateSerializer,
        responses=SimulationSerializer,
        summary="Run the draft (or a graph) against typed messages; nothing is stored",
    )
    def post(self, request, flow_id: int):
        flow = self._flow(flow_id)
        body = SimulateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.flow_simulate(
            by=request.user,
            flow=flow,
            messages=body.validated_data["messages"],
            graph=body.validated_data.get("graph"),
        )
        return Response(result)


class ArticleListView(BotsView):
    @extend_schema(
        parameters=[ArticleQuery],
        responses=_page(ArticleSerializer, "ArticlePage"),
        summary="Knowledge-base articles (`q` searches title, body and tags)",
        operation_id="articles_list",
    )
    def get(self, request):
        query = ArticleQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        rows = selectors.article_list(by=request.user, query=query.validated_data["q"])
        return self._paginate(rows, ArticleSerializer)

    @extend_schema(
        request=ArticleWriteSerializer,
        responses={201: ArticleSerializer},
        summary="Create an article (screened: instruction-like text is flagged, never used)",
    )
    def post(self, request):
        body = ArticleWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        article = services.article_create(by=request.user, **body.validated_data)
        return Response(ArticleSerializer(article).data, status=status.HTTP_201_CREATED)


class ArticleDetailView(BotsView):
    def _article(self, article_id: int) -> KnowledgeArticle:
        return selectors.article_get(by=self.request.user, article_id=article_id)

    @extend_schema(responses=ArticleSerializer, summary="One article")
    def get(self, request, article_id: int):
        return Response(ArticleSerializer(self._article(article_id)).data)

    @extend_schema(
        request=ArticleWriteSerializer(partial=True),
        responses=ArticleSerializer,
        summary="Change an article (screened again)",
    )
    def patch(self, request, article_id: int):
        article = self._article(article_id)
        body = ArticleWriteSerializer(data=request.data, partial=True)
        body.is_valid(raise_exception=True)
        article = services.article_update(by=request.user, article=article, **body.validated_data)
        return Response(ArticleSerializer(article).data)

    @extend_schema(responses={204: None}, summary="Delete an article")
    def delete(self, request, article_id: int):
        services.article_delete(by=request.user, article=self._article(article_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AllowedHostListView(BotsView):
    """The hosts HTTP-request nodes may call: owners, admins and integrators only."""

    permission_classes = [HasPolicyPermission, StepUpFresh]
    required_permission = Perm.CONNECTORS_MANAGE

    @extend_schema(
        responses=_page(AllowedHostSerializer, "AllowedHostPage"),
        summary="Hosts bot HTTP-request nodes may call",
        operation_id="bot_hosts_list",
    )
    def get(self, request):
        return self._paginate(selectors.allowed_host_list(by=request.user), AllowedHostSerializer)

    @extend_schema(
        request=AllowedHostWriteSerializer,
        responses={201: AllowedHostSerializer},
        summary="Allow a host (no private or loopback IPs)",
    )
    def post(self, request):
        body = AllowedHostWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        entry = services.allowed_host_add(by=request.user, **body.validated_data)
        return Response(AllowedHostSerializer(entry).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[
            OpenApiParameter("host", str, description="The host to remove (or in the body).")
        ],
        request=AllowedHostDeleteSerializer,
        responses={204: None, 404: RefusalSerializer},
        summary="Take a host off the list",
    )
    def delete(self, request):
        data = request.data if request.data else request.query_params
        body = AllowedHostDeleteSerializer(data=data)
        body.is_valid(raise_exception=True)
        services.allowed_host_remove(by=request.user, host=body.validated_data["host"])
        return Response(status=status.HTTP_204_NO_CONTENT)
