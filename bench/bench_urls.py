"""Parley's tenant URLs plus ``/bench/ok/``: the floor of the webhook benchmark.

The view answers 200 through the same middleware as every tenant request (tenant
by host, security headers, sessions), without touching the database itself, so
``bench/webhooks.py`` can compare the webhook to what the server costs anyway.
Only ``bench_settings`` (benchmarks) routes here.
"""

import os

from django.http import JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from parley.urls import urlpatterns as parley_urlpatterns


@csrf_exempt
def ok(request):
    request.read()  # the body is read, as the webhook reads it
    return JsonResponse({"ok": True, "worker": os.getpid()})  # which worker: see Server.start


urlpatterns = [path("bench/ok/", ok), *parley_urlpatterns]
