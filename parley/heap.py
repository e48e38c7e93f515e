"""Long-lived processes keep their start-up heap out of the cyclic garbage collector.

A Parley process holds about 200,000 container objects once Django, the apps and
the URLconfs are loaded: modules, classes, functions, model metadata, settings.
None of them is garbage, yet CPython's full (generation 2) collection walks every
one of them each time it runs: about 95 ms of a core here, with the GIL held, so
every thread of that gunicorn worker stops for as long. In one run of
``bench/webhooks.py`` the three workers ran eight of them, of 87 to 242 ms each;
frozen, the same run's full collections took 7 to 65 ms (docs/scaling.md,
"Round six").

:func:`freeze_startup_heap` runs once the process is ready to serve: at the end
of ``parley/wsgi.py`` and ``parley/asgi.py``, which a gunicorn worker imports
after it has forked, and in each Celery worker process (``worker_process_init``,
connected below; ``parley.apps`` imports this module when Django starts). It
loads what the first request would otherwise load (the URLconfs), collects what
start-up left as garbage, then ``gc.freeze()`` moves every object alive at that
point into the permanent generation, which collections skip. Nothing else
changes: reference counting still frees a frozen object when its last reference
goes, and objects created later are collected as before. What freezing gives up
is collecting a reference cycle among the frozen objects, and the collection
just before it leaves none.
"""

from __future__ import annotations

import gc
import logging
from typing import Any

from celery.signals import worker_process_init
from django.apps import apps
from django.conf import settings
from django.urls import get_resolver

logger = logging.getLogger(__name__)


def _load_urlconfs() -> None:
    # The views and the resolver's lookup tables: loaded by the first request
    # otherwise, and then never frozen. Names from settings (no import here:
    # the kernel imports no app).
    for name in {settings.ROOT_URLCONF, getattr(settings, "PUBLIC_SCHEMA_URLCONF", None)}:
        if name:
            get_resolver(name).reverse_dict  # noqa: B018 - builds the lookup tables


def freeze_startup_heap(*, load_urlconfs: bool = True) -> int:
    """Collect, then freeze every object alive now: the number of objects frozen.

    ``load_urlconfs``: load the URLconfs first (when Django's apps are ready), so a
    web worker's views are part of what is frozen."""
    if load_urlconfs and apps.ready:
        _load_urlconfs()
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("start-up heap frozen: %d objects left out of garbage collection", frozen)
    return frozen


# A Celery worker process (a prefork child; the one process with --pool solo):
# the URLconfs too, as tasks reverse URLs (the activation link in an e-mail).
@worker_process_init.connect(dispatch_uid="parley_freeze_startup_heap")
def _freeze_in_a_worker_process(**kwargs: Any) -> None:
    freeze_startup_heap()
