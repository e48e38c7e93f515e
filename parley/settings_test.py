"""Test settings: the base settings against the test database and Redis db.

The suite connects as the app role, like web and workers; fixtures switch to
the owner role only where the product would (migrations, provisioning).
"""

import os

os.environ.setdefault("PARLEY_ENV", "test")

from parley.settings import *  # noqa: E402,F403
from parley.settings import DATABASES, REDIS_URL  # noqa: E402

DATABASES["default"]["NAME"] = os.environ.get("PARLEY_TEST_DB_NAME", "test_parley")
DATABASES["default"]["CONN_MAX_AGE"] = 0


def _redis_db(url: str, db: int) -> str:
    base, _, last = url.rpartition("/")
    return f"{base}/{db}" if last.isdigit() else f"{url.rstrip('/')}/{db}"


# A separate Redis database: a running `make run` and the suite do not share queues.
REDIS_URL = _redis_db(REDIS_URL, int(os.environ.get("PARLEY_TEST_REDIS_DB", "1")))
CACHES["default"]["LOCATION"] = REDIS_URL  # noqa: F405
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.MD5PasswordHasher"
]  # speed; production uses PBKDF2

# Static files are found when asked for, as in development, instead of WhiteNoise
# indexing every file of every finder (~130, ~10 ms) each time its middleware is
# built: Django builds the middleware chain for every test Client, thousands a run.
# What is served, and how, is the same; only production (collectstatic, the manifest)
# indexes at start-up.
WHITENOISE_AUTOREFRESH = True
