import os

from django.core.wsgi import get_wsgi_application

from parley.heap import freeze_startup_heap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parley.settings")
application = get_wsgi_application()
# Each gunicorn worker imports this module once it has forked: from here on a full
# garbage collection skips the start-up heap (parley/heap.py says why).
freeze_startup_heap()
