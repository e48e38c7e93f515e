import os

from django.core.asgi import get_asgi_application

from parley.heap import freeze_startup_heap

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parley.settings")
application = get_asgi_application()
freeze_startup_heap()  # as in parley/wsgi.py
