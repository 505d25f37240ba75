"""Settings, read from the environment (django-environ).

Every integration switches on when its variable is set; nothing exists only in
production. With ``DATABASE_URL`` / ``REDIS_URL`` unset the embedded services
of ``core.embedded`` are started. See README.md for production settings.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from core import client_address as _client_address
from core import embedded
from core import logs as _logs
from core import ratelimit as _ratelimit

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)


def _secret_key() -> str:
    """``SECRET_KEY``, or one generated once and kept under the data directory."""
    if value := env.str("SECRET_KEY", default=""):
        return value
    key_file = embedded.data_dir() / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# https://docs.djangoproject.com/en/5.2/ref/settings/#csrf-trusted-origins
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "anymail",
    "accounts",
    "tracking",
    "segmentation",
    "segmentation.catalogue",
    "campaigns",
    "insights",
    "demo",
]

# The modules that hear what happens to people in tracking (tracking/events.py: ingestion's
# changes, imports, merges, erasures, exports), in the order they are told.
TRACKING_SUBSCRIBERS = [
    "segmentation.people",
    "segmentation.catalogue.people",
    "insights.clustering_people",
    "insights.people",
    "campaigns.people",
    # Event triggers of campaigns: the inbox of people who did an event a listening campaign triggers on.
    "campaigns.trigger_people",
]
# What apps above tracking add to its views of people: filters, fields, page sections (tracking/people_extensions.py).
TRACKING_PEOPLE_EXTENSIONS = ["segmentation.person_views", "campaigns.person_views"]
# Send-time optimisation: how fast old events stop counting toward a person's active hours (docs/campaigns.md).
ACTIVE_HOURS_HALF_LIFE_DAYS = env.float("ACTIVE_HOURS_HALF_LIFE_DAYS", default=30.0)

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "accounts.middleware.WorkspaceScopeMiddleware",
    # Last, so that its error page has the user and workspace every page's context reads.
    "core.middleware.RefuseNulInQueryMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

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
                "accounts.context_processors.workspace",
            ],
        },
    },
]

# --- Database: PostgreSQL only, embedded when DATABASE_URL is unset -----------
DATABASES = {"default": env.db_url_config(env.str("DATABASE_URL", default="") or embedded.postgres_url())}
if socket_dir := DATABASES["default"].get("OPTIONS", {}).pop("host", None):
    DATABASES["default"]["HOST"] = socket_dir
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# JIT compilation off: it pays back only on statements of many seconds over huge
# scans. Segment evaluations spent a large share of their time compiling (figures:
# bench/README.md); the estimates of those set-based statements are large enough to
# trigger it, and nothing else of the app gains from it.
_db_options = DATABASES["default"].setdefault("OPTIONS", {})
_db_options["options"] = f"{_db_options.get('options', '')} -c jit=off".strip()
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: cache, Celery broker; embedded when REDIS_URL is unset -------------
REDIS_URL = env.str("REDIS_URL", default="") or embedded.redis_url()
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="cohortly"),
    }
}
# kombu spells a unix socket "redis+socket://"
CELERY_BROKER_URL = REDIS_URL.replace("unix://", "redis+socket://", 1)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Where tasks go unless a setting names their queue (a worker of its own: tests, benchmarks).
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="celery")
# https://docs.celeryq.dev/en/stable/userguide/periodic-tasks.html
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # Event partitions months ahead; message ids past the 7-day dedupe window.
    "tracking-maintenance": {"task": "tracking.tasks.tracking_maintenance", "schedule": 3600.0},
    # Webhook retries that are due, and deliveries whose enqueue failed (broker down).
    "webhooks-sweep": {"task": "segmentation.webhooks.tasks.webhooks_sweep", "schedule": 60.0},
    # The builder's autocomplete catalogue: events received since each workspace's watermark.
    "catalogue-sweep": {"task": "segmentation.catalogue.tasks.catalogue_sweep", "schedule": 60.0},
    # Dynamic segments whose next_refresh_at has come, claimed fairly across workspaces (docs/segments.md).
    "segments-refresh-due": {"task": "segmentation.tasks.segments_refresh_due", "schedule": 30.0},
    # Real-time segment membership: workspaces whose drain kick was lost or debounced (docs/segments.md).
    "segments-realtime-sweep": {"task": "segmentation.tasks.segment_realtime_sweep", "schedule": 2.0},
    # The change feed: workspaces with segment entries and exits a consumer has not read (lost kicks).
    "segments-feed-sweep": {"task": "segmentation.feed_sweep", "schedule": 5.0},
    # Computed traits (RFM, engagement) of workspaces with new events, or not computed for a day (docs/insights.md).
    "insights-computed-traits-sweep": {"task": "insights.tasks.computed_traits_sweep", "schedule": 60.0},
    # Campaigns: fan out due broadcast runs, close finished ones, keep the dispatch of due sends going
    # (docs/campaigns.md, "Sending engine").
    "campaigns-tick": {"task": "campaigns.tasks.campaigns_tick", "schedule": 5.0},
    # Event triggers of campaigns: workspaces whose trigger inbox still has rows (lost kicks; docs/campaigns.md).
    "campaigns-triggers-sweep": {"task": "campaigns.triggers_sweep", "schedule": 5.0},
    # Send-time optimisation: people's most active hours, from the events received since the last run.
    "campaigns-active-hours": {"task": "campaigns.tasks.active_hours_tick", "schedule": 3600.0},
}
# The queue of the real-time membership drains; a worker of its own (-Q) keeps them from waiting
# behind long full refreshes. Default: Celery's default queue.
SEGMENTS_REALTIME_QUEUE = env.str("SEGMENTS_REALTIME_QUEUE", default="celery")
# The queue of the change feed's drains (docs/architecture.md, "Change feed"). Default: Celery's default queue.
SEGMENT_FEED_QUEUE = env.str("SEGMENT_FEED_QUEUE", default="celery")
# The queue of the campaigns engine's fan-outs and dispatch chains. Default: Celery's default queue.
CAMPAIGNS_QUEUE = env.str("CAMPAIGNS_QUEUE", default="celery")
# How long a worker's claim on a chunk of sends holds: a worker lost mid-chunk leaves its sends
# to be claimed again after this (docs/campaigns.md, "Sending engine").
CAMPAIGN_CLAIM_SECONDS = env.int("CAMPAIGN_CLAIM_SECONDS", default=120)
# Dispatch chains the tick keeps running while sends are due (each one worker at a time).
CAMPAIGN_DISPATCH_CHAINS = env.int("CAMPAIGN_DISPATCH_CHAINS", default=2)
# Threads sending a chunk's messages in parallel, each over its own SMTP or HTTP connection;
# 0: the channel's default (4 for email, 8 for webhooks, whose endpoints answer more slowly).
CAMPAIGN_SENDER_THREADS = env.int("CAMPAIGN_SENDER_THREADS", default=0)

# --- Accounts ---------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
INVITATION_TTL_DAYS = 7

# --- Throttles: client addresses, sign-in, reset, sign-up, REST, ingestion -----
# Reverse proxies (addresses or CIDRs) whose X-Forwarded-For is believed: the client is the
# first address, read from the right, that is not one of them (core/client_address.py).
# Empty: the client is the TCP peer (REMOTE_ADDR). Behind a proxy, set it, or every client
# shares the proxy's address and its throttles.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
# From the LOGIN_FAILURE_LIMIT-th failed sign-in of one account (email) on, each failure makes
# the next attempt wait LOGIN_BACKOFF_FIRST_SECONDS, then twice as long each time (1 s, 2 s,
# 4 s, ...), at most LOGIN_BACKOFF_MAX_SECONDS. LOGIN_ADDRESS_FAILURE_LIMIT: the same per
# client address, across accounts.
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", default=25)
LOGIN_BACKOFF_FIRST_SECONDS = env.float("LOGIN_BACKOFF_FIRST_SECONDS", default=1.0)
LOGIN_BACKOFF_MAX_SECONDS = env.int("LOGIN_BACKOFF_MAX_SECONDS", default=300)
# Failure counts are forgotten this long after the last failure.
LOGIN_FAILURE_WINDOW_SECONDS = env.int("LOGIN_FAILURE_WINDOW_SECONDS", default=900)
# Emails the public forms may cause, as "count/period" (s, min, hour, day; "10/15min" too):
# per client address, and per target email (the same whether it has an account or not).
PASSWORD_RESET_ADDRESS_RATE = env.str("PASSWORD_RESET_ADDRESS_RATE", default="10/hour")
PASSWORD_RESET_EMAIL_RATE = env.str("PASSWORD_RESET_EMAIL_RATE", default="3/hour")
SIGNUP_ADDRESS_RATE = env.str("SIGNUP_ADDRESS_RATE", default="10/hour")
SIGNUP_EMAIL_RATE = env.str("SIGNUP_EMAIL_RATE", default="3/hour")
# A sign-up link (mailed to confirm the address before the account exists) works this long.
SIGNUP_LINK_TTL_SECONDS = env.int("SIGNUP_LINK_TTL_SECONDS", default=86400)
# REST API: requests per secret API key, and failed bearer authentications per client address.
API_KEY_RATE = env.str("API_KEY_RATE", default="100/s")
API_AUTH_FAILURE_RATE = env.str("API_AUTH_FAILURE_RATE", default="20/min")
# Tracking API: messages per second per write key (a batch of 100 counts 100); over it, 429 with
# Retry-After, which Segment's SDKs honour. 0: no limit.
INGEST_RATE_PER_WRITE_KEY = env.int("INGEST_RATE_PER_WRITE_KEY", default=5000)
# A bad proxy network or rate stops the start, instead of failing each request.
_client_address.parse_networks(TRUSTED_PROXIES)
for _rate in (PASSWORD_RESET_ADDRESS_RATE, PASSWORD_RESET_EMAIL_RATE, SIGNUP_ADDRESS_RATE, SIGNUP_EMAIL_RATE):
    _ratelimit.Rate.parse(_rate)
_ratelimit.Rate.parse(API_KEY_RATE)
_ratelimit.Rate.parse(API_AUTH_FAILURE_RATE)

# --- Email: EMAIL_URL in django-environ's form, e.g. smtp://127.0.0.1:2525 --
# https://django-environ.readthedocs.io/en/latest/types.html#environ-env-email-url
EMAIL_URL = env.str("EMAIL_URL", default="")
vars().update(env.email_url_config(EMAIL_URL or "consolemail://"))
# An ESP through django-anymail instead (docs/campaigns.md, "Content, channels and engagement"):
# EMAIL_BACKEND=anymail.backends.mailgun.EmailBackend, and its settings as ANYMAIL_<NAME> variables
# (ANYMAIL_MAILGUN_API_KEY, ANYMAIL_WEBHOOK_SECRET, ...). https://anymail.dev/en/stable/esps/
if env.str("EMAIL_BACKEND", default=""):
    vars()["EMAIL_BACKEND"] = env.str("EMAIL_BACKEND")
ANYMAIL = {name.removeprefix("ANYMAIL_"): value for name, value in os.environ.items() if name.startswith("ANYMAIL_")}
EMAIL_CONFIGURED = bool(EMAIL_URL or env.str("EMAIL_BACKEND", default=""))
# Nothing configured: the console backend that also keeps the last 200 messages for the development
# outbox page (Settings > Campaigns > Outbox; docs/campaigns.md, "Results, caps and outbox pages").
if not EMAIL_CONFIGURED:
    vars()["EMAIL_BACKEND"] = "campaigns.outbox.ConsoleOutboxBackend"
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Cohortly <no-reply@cohortly.localhost>")
# Seconds an SMTP connection waits for the server: a silent server fails the send (retried later)
# instead of holding a campaign sender thread, and its chunk's claims, for ever.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=30.0)
# Where people reach this server from outside: the links in campaign emails (opens, clicks,
# unsubscribes) are made from it, and Message-IDs name its host.
PUBLIC_URL = env.str("PUBLIC_URL", default="http://localhost:8000").rstrip("/")

# --- HTTPS and browser security headers ---------------------------------------
# All off by default, for plain http on a laptop; README.md "Production" lists the values
# behind a TLS-terminating proxy. https://docs.djangoproject.com/en/5.2/ref/middleware/#module-django.middleware.security


def _proxy_ssl_header() -> tuple[str, str] | None:
    """``SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https``: the header a proxy sets and its value for https.

    Set it only behind a proxy that always sets (or strips) that header, or clients could claim https.
    https://docs.djangoproject.com/en/5.2/ref/settings/#secure-proxy-ssl-header
    """
    value = env.list("SECURE_PROXY_SSL_HEADER", default=[])
    if not value:
        return None
    if len(value) != 2 or not value[0].startswith("HTTP_"):
        raise ImproperlyConfigured("SECURE_PROXY_SSL_HEADER must read HEADER,VALUE, e.g. HTTP_X_FORWARDED_PROTO,https")
    return (value[0], value[1])


SECURE_PROXY_SSL_HEADER = _proxy_ssl_header()
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# The pages' Content-Security-Policy (django-csp 4): scripts, styles, images and requests from
# this origin only; no inline script, style attribute or eval anywhere (static/js, static/css).
# The tracking endpoints and the snippet are called from customers' sites and serve no HTML.
# https://django-csp.readthedocs.io/en/latest/configuration.html
CONTENT_SECURITY_POLICY = {
    "EXCLUDE_URL_PREFIXES": ["/v1/", "/sdk/"],
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "frame-ancestors": [NONE],
        "form-action": [SELF],
    },
}

# --- Webhooks -------------------------------------------------------------
# Allow webhook targets on loopback, private, link-local and other non-public
# addresses. Off by default (it would let workspaces reach this server's own
# network); turn on for self-hosting next to the receiving services.
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=False)

# --- Segments ---------------------------------------------------------------
# Statement timeouts (SET LOCAL statement_timeout) of a membership refresh and of a preview.
SEGMENT_REFRESH_TIMEOUT_SECONDS = env.float("SEGMENT_REFRESH_TIMEOUT_SECONDS", default=120.0)
SEGMENT_PREVIEW_TIMEOUT_SECONDS = env.float("SEGMENT_PREVIEW_TIMEOUT_SECONDS", default=10.0)
# PostgreSQL's work_mem for evaluating a definition (refreshes, previews): memory of each
# hash and sort of the statement, per process (a parallel plan has up to 3 of them), before
# it spills to disk. PostgreSQL's own default, 4MB, spills when grouping a million people.
SEGMENT_WORK_MEM = env.str("SEGMENT_WORK_MEM", default="64MB")
# After failed refreshes the next one waits interval * 2^failures, at most this long.
SEGMENT_REFRESH_MAX_BACKOFF_SECONDS = env.int("SEGMENT_REFRESH_MAX_BACKOFF_SECONDS", default=86400)
# Refreshes of one workspace claimed (queued or running) at once; the rest stay due, so that one
# workspace's slow segments cannot hold every worker (docs/segments.md, "Fairness between workspaces").
SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE = env.int("SEGMENT_REFRESH_CONCURRENCY_PER_WORKSPACE", default=2)
# Statement timeouts of insights (docs/insights.md): a funnel or retention table asked through the REST
# API (answered in the request), the same computed by a task for the pages, and a computed traits run.
INSIGHTS_TIMEOUT_SECONDS = env.float("INSIGHTS_TIMEOUT_SECONDS", default=60.0)
INSIGHTS_JOB_TIMEOUT_SECONDS = env.float("INSIGHTS_JOB_TIMEOUT_SECONDS", default=600.0)
INSIGHTS_TRAITS_TIMEOUT_SECONDS = env.float("INSIGHTS_TRAITS_TIMEOUT_SECONDS", default=900.0)
# Consumers of the change feed of segment entries and exits (segmentation/feed.py): name -> dotted path
# of a function called with (workspace=, changes=) inside the transaction that moves its cursor.
# The name keys the consumer's cursors. Higher apps add theirs here; segmentation never names them.
SEGMENT_FEED_CONSUMERS: dict[str, str] = {
    "webhooks": "segmentation.webhooks.services.deliveries_from_changes",
    # Triggered campaigns on segment entry: a pending send per entry (docs/campaigns.md).
    "campaigns": "campaigns.triggers.sends_from_changes",
}
# Changes per consumer transaction.
SEGMENT_FEED_BATCH_SIZE = env.int("SEGMENT_FEED_BATCH_SIZE", default=500)

# --- REST API ---------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.WorkspaceRole"],
    "DEFAULT_PAGINATION_CLASS": "core.api.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "config.schema.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,
}
# Requests per secret API key (API_KEY_RATE), in Redis through the default cache.
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["accounts.authentication.ApiKeyRateThrottle"]
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Cohortly API",
    "DESCRIPTION": (
        "Segments, people, events, webhooks and settings of one workspace (/api/v1/, a secret API key), "
        "and the tracking API that receives events (/v1/, the public write key)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/api/v1",
    # PATCH views validate their own serializers as they are (no partial=True): document them so.
    "COMPONENT_SPLIT_PATCH": False,
    "PREPROCESSING_HOOKS": ["config.schema.exclude_format_suffixes"],
    # Several models have a choice set on a field named "status": each its own component.
    "ENUM_NAME_OVERRIDES": {
        "SegmentStatusEnum": "segmentation.models.SegmentStatus",
        "ClusteringStatusEnum": "insights.models.ClusteringStatus",
        "InsightJobStatusEnum": "insights.models.RunStatus",
        "CampaignStatusEnum": "campaigns.models.CampaignStatus",
        "CampaignChannelEnum": "campaigns.models.Channel",
        "CampaignKindEnum": "campaigns.models.CampaignKind",
        "CampaignTriggerOnEnum": "campaigns.models.TriggerOn",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "tracking.ingest_schema.add_ingest_paths",
    ],
}

# --- Static files -------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Serve straight from the source folders when collectstatic has not run (dev).
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

CSRF_FAILURE_VIEW = "core.errors.csrf_failure"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# Tasks run every few seconds or minutes (by beat, or kicked by those runs): their routine log lines
# (sent, received, succeeded doing nothing) are DEBUG, so that the worker's and beat's INFO logs show
# work done and failures (core/logs.py). Hourly upkeep stays at INFO.
ROUTINE_TASKS = sorted(
    {str(entry["task"]) for entry in CELERY_BEAT_SCHEDULE.values() if float(str(entry["schedule"])) < 3600}
    | {
        "segmentation.tasks.segment_realtime_drain",
        "segmentation.feed_drain",
        "campaigns.triggers_drain",
        "segmentation.catalogue.tasks.catalogue_update_task",
        "campaigns.dispatch_kick",
    }
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"routine_tasks": {"()": "core.logs.RoutineTasks", "tasks": ROUTINE_TASKS}},
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {name: {"filters": ["routine_tasks"]} for name in _logs.CELERY_LOGGERS},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="WARNING")},
}
