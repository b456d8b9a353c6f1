"""Django settings, derived from the validated environment in ``config.env``."""

from __future__ import annotations

import dj_database_url

from config.env import (
    development_master_keys,
    development_secret_key,
    load_env,
)
from config.logs import choose_json, logging_config

ENV = load_env()

LUMINA_ENV = ENV.lumina_env.value
DEBUG = ENV.debug
DATA_DIR = ENV.lumina_data_dir
SECRET_KEY = ENV.secret_key or development_secret_key(DATA_DIR)
ALLOWED_HOSTS = ENV.allowed_hosts
CSRF_TRUSTED_ORIGINS = ENV.csrf_trusted_origins

INSTALLED_APPS = [
    "lumina.security.apps.AdminConfig",  # django.contrib.admin with Lumina's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_prometheus",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "guardian",
    # django-otp's framework only: the devices are security's own models, whose secrets
    # are sealed or hashed (the plugins' tables kept them in plaintext).
    "django_otp",
    "lumina.kernel",
    "lumina.security",
    "lumina.providers",
    "lumina.memory",
    "lumina.tools",
    "lumina.ui",
    "lumina.platform",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "lumina.platform.middleware.RequestIdMiddleware",
    "lumina.platform.middleware.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "lumina.security.http.middleware.SessionActivityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: PostgreSQL + pgvector, embedded unless DATABASE_URL is set -------------
if ENV.database_url:
    DATABASES = {"default": dj_database_url.parse(ENV.database_url, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "config.embedded_postgres",
            "NAME": "lumina",
            "USER": "postgres",
            "OPTIONS": {"pgdata": str(DATA_DIR / "pgdata")},
            "CONN_MAX_AGE": 60,
        }
    }
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A second connection to the same database, for the audit chain only: its writes commit on
# their own, so an audit entry outlives a rollback of the request's transaction
# (lumina.security.routers; see the ADR on durable audit records).
DATABASES["audit"] = {**DATABASES["default"], "TEST": dict(DATABASES["default"].get("TEST", {}))}
DATABASE_ROUTERS = ["lumina.security.routers.AuditRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LUMINA_HOST = ENV.lumina_host
LUMINA_PORT = ENV.lumina_port
LUMINA_ADMIN_EMAIL = ENV.lumina_admin_email
LUMINA_ADMIN_PASSWORD = ENV.lumina_admin_password

# --- Users and passwords --------------------------------------------------------------
AUTH_USER_MODEL = "security.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
# Only the password check: permissions are decided by security.api.authorize alone, which
# reads guardian's object grants itself (a guardian backend would answer has_perm beside it).
AUTHENTICATION_BACKENDS = ["lumina.security.backends.LockoutModelBackend"]
SILENCED_SYSTEM_CHECKS = ["guardian.W001"]  # "guardian's backend is not installed": on purpose
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# --- Security context -----------------------------------------------------------------
# Key-encryption keyring for envelope encryption (see lumina.security.crypto).
LUMINA_MASTER_KEYS = ENV.lumina_master_keys or development_master_keys(DATA_DIR)
LUMINA_REQUIRE_STAFF_MFA = (
    ENV.is_production if ENV.lumina_require_staff_mfa is None else ENV.lumina_require_staff_mfa
)
LUMINA_LOGIN_MAX_FAILURES = ENV.lumina_login_max_failures
LUMINA_LOGIN_LOCKOUT_SECONDS = ENV.lumina_login_lockout_seconds
# The audit chain's signed head (lumina.security.services.audit_head).
LUMINA_AUDIT_HEAD_FILE = ENV.lumina_audit_head_file or DATA_DIR / "audit-heads.jsonl"
LUMINA_AUDIT_HEAD_INTERVAL = ENV.lumina_audit_head_interval

# Providers (lumina.providers.resilience).
LUMINA_BREAKER_FAILURES = ENV.lumina_breaker_failures
LUMINA_BREAKER_COOLDOWN = ENV.lumina_breaker_cooldown
LUMINA_BULKHEAD_WAIT = ENV.lumina_bulkhead_wait
LUMINA_PROVIDER_RETRIES = ENV.lumina_provider_retries
LUMINA_PROVIDER_RETRY_BACKOFF = ENV.lumina_provider_retry_backoff
LUMINA_PROVIDER_RETRY_MAX_WAIT = ENV.lumina_provider_retry_max_wait
LUMINA_LATENCY_ALPHA = ENV.lumina_latency_alpha
LUMINA_LOCAL_EMBEDDINGS = ENV.lumina_local_embeddings.value
# Outbound-URL guard (lumina.kernel.outbound): non-public networks Lumina may connect to.
LUMINA_OUTBOUND_ALLOW = ENV.outbound_allow
OTP_TOTP_ISSUER = "Lumina"
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: anonymous requests get nothing
# Sessions (lumina.security.sessions): end after LUMINA_SESSION_IDLE_TIMEOUT seconds without
# a request or LUMINA_SESSION_MAX_AGE seconds after sign-in, whichever comes first.
SESSION_ENGINE = "lumina.security.sessions"
LUMINA_SESSION_IDLE_TIMEOUT = ENV.lumina_session_idle_timeout
LUMINA_SESSION_MAX_AGE = ENV.lumina_session_max_age
SESSION_COOKIE_AGE = LUMINA_SESSION_MAX_AGE
# Password reset links (lumina.security.services.passwords): valid this long, and once.
PASSWORD_RESET_TIMEOUT = ENV.lumina_password_reset_timeout
LUMINA_PUBLIC_URL = str(ENV.lumina_public_url or f"http://{LUMINA_HOST}:{LUMINA_PORT}").rstrip("/")
LUMINA_PASSWORD_RESET_URL = f"{LUMINA_PUBLIC_URL}/accounts/password-reset/{{uid}}/{{token}}/"

# --- Email: printed to the console in development, sent over SMTP in production --------
EMAIL_BACKEND = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
}[ENV.lumina_email_backend or ("smtp" if ENV.is_production else "console")]
EMAIL_HOST = ENV.email_host
EMAIL_PORT = ENV.email_port
EMAIL_HOST_USER = ENV.email_host_user
EMAIL_HOST_PASSWORD = ENV.email_host_password or ""
EMAIL_USE_TLS = ENV.email_use_tls
EMAIL_USE_SSL = ENV.email_use_ssl
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = ENV.default_from_email

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"

# --- Cache, channels, Celery: Redis when configured, in-process otherwise ------------
REDIS_URL = str(ENV.redis_url) if ENV.redis_url else None
if REDIS_URL:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

CELERY_BROKER_URL = ENV.celery_broker_url or REDIS_URL or "redis://127.0.0.1:6379/0"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing happens after commit, inside requests: fail fast when the broker is away.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE = {
    "relay-outbox": {
        "task": "lumina.kernel.tasks.relay_outbox",
        "schedule": ENV.lumina_outbox_relay_interval,
    },
}
CELERY_BEAT_SCHEDULE["expire-memories"] = {
    "task": "lumina.memory.tasks.expire_memories",
    "schedule": 300.0,
}
if LUMINA_AUDIT_HEAD_INTERVAL:
    CELERY_BEAT_SCHEDULE["export-audit-head"] = {
        "task": "lumina.security.tasks.export_audit_head",
        "schedule": LUMINA_AUDIT_HEAD_INTERVAL,
    }

# --- Event bus: the one swappable seam (see docs/adr/0003-event-bus-and-outbox.md) ---
# A name from lumina.kernel.transports.TRANSPORTS ("inprocess" or "celery").
LUMINA_SANDBOX_MODE = ENV.lumina_sandbox_mode.value
LUMINA_SANDBOX_POOL_SIZE = ENV.lumina_sandbox_pool_size
LUMINA_SANDBOX_PYTHON = str(ENV.lumina_sandbox_python) if ENV.lumina_sandbox_python else None
LUMINA_SANDBOX_UID = ENV.lumina_sandbox_uid
LUMINA_SANDBOX_GID = ENV.lumina_sandbox_gid
LUMINA_MCP_STDIO_COMMANDS = tuple(ENV.lumina_mcp_stdio_commands)
LUMINA_TOOLS_SYNC_SECONDS = ENV.lumina_tools_sync_seconds
LUMINA_TOOLS_ASYNC_WORKERS = ENV.lumina_tools_async_workers
LUMINA_TOOLS_SUMMARY_MODEL = ENV.lumina_tools_summary_model

LUMINA_EVENT_TRANSPORT = ENV.lumina_event_transport.value
# The Celery app the Celery transport sends through, loaded by that transport only.
LUMINA_CELERY_APP = "config.celery.app"
LUMINA_EVENT_MAX_ATTEMPTS = ENV.lumina_event_max_attempts
LUMINA_OUTBOX_RELAY_INTERVAL = ENV.lumina_outbox_relay_interval

# --- HTTP API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Tags by context and every error status, derived once (lumina.platform.http.schema).
    "DEFAULT_SCHEMA_CLASS": "lumina.platform.http.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "lumina.platform.http.pagination.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "lumina.platform.http.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["lumina.platform.http.parsers.JSONParser"],
    # Bearer tokens first: DRF takes the first class's challenge for its 401s.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "lumina.security.http.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # Sessions of MFA users count only once their second factor is verified.
    "DEFAULT_PERMISSION_CLASSES": ["lumina.security.http.permissions.IsFullyAuthenticated"],
    # Attempts per client address (lumina.security.http.throttles).
    "DEFAULT_THROTTLE_RATES": {"login": "20/min", "mfa": "20/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Lumina API",
    "DESCRIPTION": "Self-hostable AI platform backend.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get their own components, so non-blank strings say minLength: 1.
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets sharing a field name get names of their own (a provider's and a tool's
    # kind, a topic's scope).
    "ENUM_NAME_OVERRIDES": {
        "ProviderKindEnum": "lumina.providers.http.registry.KINDS",
        "ToolKindEnum": "lumina.tools.http.registry.KINDS",
        "TopicScopeEnum": ["user", "agent", "session", "collection"],
        "BudgetScopeEnum": "lumina.providers.models.usage.Budget.Scope",
        "MemoryScopeEnum": ["user", "agent", "session"],
        "MemoryLayerEnum": ["working", "episodic", "semantic", "pinned"],
        "DocumentPermissionEnum": "lumina.ui.http.documents.PERMISSIONS",
        "SharePermissionEnum": "lumina.ui.http.documents.SHARE_LEVELS",
    },
    # The description (with the /v1 gateway), tags and their descriptions.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "lumina.platform.http.schema.postprocess",
    ],
    # /api/docs/ offers both documents: the REST API and the OpenAI-compatible /v1.
    "SWAGGER_UI_SETTINGS": """{
        urls: [
            {url: "/api/schema/", name: "Lumina REST API (/api/v1)"},
            {url: "/api/schema/gateway/", name: "OpenAI-compatible gateway (/v1)"},
        ],
        presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
        layout: "StandaloneLayout",
        deepLinking: true,
    }""",
}
CSRF_FAILURE_VIEW = "lumina.platform.http.errors.csrf_failure"
LUMINA_MAX_REQUEST_BYTES = ENV.lumina_max_request_bytes
DATA_UPLOAD_MAX_MEMORY_SIZE = LUMINA_MAX_REQUEST_BYTES

# --- Observability ----------------------------------------------------------------------
LOGGING = logging_config(
    ENV.lumina_log_level,
    json=choose_json(
        ENV.lumina_log_format and ENV.lumina_log_format.value, production=ENV.is_production
    ),
)
PROMETHEUS_EXPORT_MIGRATIONS = False
LUMINA_METRICS_TOKEN = ENV.lumina_metrics_token

# --- Production hardening (manage.py check --deploy is clean with these) ---------------
if ENV.is_production:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = 31_536_000
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- UI: realtime document sync (docs/documents.md, "Realtime sync") ------------------
LUMINA_DOCUMENTS_MAX_UPDATE_BYTES = ENV.lumina_documents_max_update_bytes
LUMINA_DOCUMENTS_MAX_MESSAGES_PER_SECOND = ENV.lumina_documents_max_messages_per_second
LUMINA_DOCUMENTS_MAX_CLIENTS = ENV.lumina_documents_max_clients
LUMINA_DOCUMENTS_COMPACT_EVERY = ENV.lumina_documents_compact_every
