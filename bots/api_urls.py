"""The bots API routes, included under /api/v1/ (namespace ``api``) by parley.urls."""

from django.urls import path

from bots import api

urlpatterns = [
    path("flows/", api.FlowListView.as_view(), name="flows"),
    path("flows/<int:flow_id>/", api.FlowDetailView.as_view(), name="flow"),
    path("flows/<int:flow_id>/draft/", api.DraftView.as_view(), name="flow-draft"),
    path("flows/<int:flow_id>/validate/", api.ValidateView.as_view(), name="flow-validate"),
    path("flows/<int:flow_id>/publish/", api.PublishView.as_view(), name="flow-publish"),
    path("flows/<int:flow_id>/rollback/", api.RollbackView.as_view(), name="flow-rollback"),
    path("flows/<int:flow_id>/simulate/", api.SimulateView.as_view(), name="flow-simulate"),
    path("flows/<int:flow_id>/versions/", api.VersionListView.as_view(), name="flow-versions"),
    path(
        "flows/<int:flow_id>/versions/<int:number>/",
        api.VersionDetailView.as_view(),
        name="flow-version",
    ),
    path(
        "flows/<int:flow_id>/versions/<int:number>/diff/",
        api.VersionDiffView.as_view(),
        name="flow-version-diff",
    ),
    path("articles/", api.ArticleListView.as_view(), name="articles"),
    path("articles/<int:article_id>/", api.ArticleDetailView.as_view(), name="article"),
    path("bot-hosts/", api.AllowedHostListView.as_view(), name="bot-hosts"),
]
