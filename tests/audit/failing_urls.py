"""The tenant URLs plus views that fail: for the tests of ``error.unhandled``."""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from parley.urls import handler403, handler404, handler500, urlpatterns  # noqa: F401

MARKER = "failing-view-marker-41c2"


def _fail(request):
    with transaction.atomic():
        # A change the failure rolls back: the event must not go with it.
        get_user_model().objects.filter(email="agent@acme.test").update(first_name=MARKER)
        raise RuntimeError(f"boom {MARKER}")


def failing_view(request):
    _fail(request)


class FailingApiView(APIView):
    permission_classes = [AllowAny]

    def post(self, request):
        _fail(request)


urlpatterns = [
    path("fail/", failing_view),
    path("api/v1/fail/", FailingApiView.as_view()),
    *urlpatterns,
]
