"""Settings for the channel benchmarks' web server only: Parley's, plus one bare view.

Loaded by gunicorn with ``--pythonpath bench`` and ``DJANGO_SETTINGS_MODULE=bench_settings``
(bench/_channels.py). Never imported by Parley itself, so the floor view below is
unreachable in production.
"""

from parley.settings import *  # noqa: F403

ROOT_URLCONF = "bench_urls"
