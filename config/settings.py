"""Creditdesk settings: one module, driven by the environment (django-environ).

With no environment at all the project runs on the embedded default: DEBUG on,
SQLite, an in-process cache, Celery tasks run eagerly, email to the console and no
Redis publishing. DATABASE_URL, REDIS_URL and CELERY_BROKER_URL switch to the real
services. Every variable is listed in .env.example.
"""

import os
import sys
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if os.environ.get("CREDITDESK_READ_DOTENV", "1") == "1" and (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")


def env_secret(name: str, default: str = "") -> str:
    """A secret from NAME, or from the file named by NAME_FILE (container secrets)."""
    path = env.str(f"{name}_FILE", default="")
    if path:
        return Path(path).read_text().strip()
    return env.str(name, default=default)


DEBUG = env.bool("DEBUG", default=True)
TESTING = env.bool("CREDITDESK_TESTING", default="pytest" in sys.modules)

SECRET_KEY = env_secret("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "django-insecure-embedded-default-only-for-local-development-0123456789"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Proxies: X-Forwarded-Proto and the client IP are trusted only when these say so.
if env.bool("TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.usersessions",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.microsoft",
    "allauth.socialaccount.providers.openid_connect",
    "djstripe",
    "django_guid",
    "core",
    "accounts",
    "credits",
    "apikeys",
    "usage",
    "billing",
]

MIDDLEWARE = [
    "django_guid.middleware.guid_middleware",
    "core.middleware.ApiEnvelopeMiddleware",
    "core.middleware.MethodNotAllowedPageMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.ServiceApiFastPathMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "accounts.middleware.MfaRequiredMiddleware",
    "accounts.middleware.UnconfiguredProviderMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
APPEND_SLASH = True

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
                "core.context_processors.portal",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
SQLITE_PATH = env.str("SQLITE_PATH", default=str(BASE_DIR / "db.sqlite3"))
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{SQLITE_PATH}")}
# Persistent connections (None), checked before reuse. A maximum age closes every
# thread's connection at about the same moment, since they opened together: at 600
# reports/s a 60-second age stalled the service for 120-290 ms once a minute while all
# of them reconnected, re-prepared their statements and refilled their caches on the
# server. CONN_MAX_AGE=<seconds> in the environment sets one anyway.
_conn_max_age = env.str("CONN_MAX_AGE", default="").strip().lower()
DATABASES["default"]["CONN_MAX_AGE"] = None if _conn_max_age in ("", "none") else int(_conn_max_age)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the writer; IMMEDIATE takes the write lock when a
    # transaction starts, so concurrent writers queue (busy_timeout) instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Only the hot path's statements are prepared (core.db); Django's cursors bind on the
    # client and never are. psycopg prepares nothing while prepare_threshold is None
    # (Django's default). Planning the report's joined read cost 1.4 ms against 0.08 ms of
    # running it (pg_stat_statements under load); its generic plan is all index scans.
    options = DATABASES["default"].setdefault("OPTIONS", {})
    options.setdefault("prepare_threshold", 5)
    options["options"] = f"{options.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
IS_POSTGRES = DATABASES["default"]["ENGINE"].endswith("postgresql")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis ----------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="creditdesk")
# Publishing the contract's hashes to Redis; off on the embedded default.
REDIS_PUBLISH_ENABLED = env.bool("REDIS_PUBLISH_ENABLED", default=bool(REDIS_URL))
# Web server processes publish from a background thread that gathers the changes of this
# many seconds into one push (core.publisher.BackgroundPublisher); 0 pushes in each request.
REDIS_PUBLISH_LINGER_SECONDS = env.float("REDIS_PUBLISH_LINGER_SECONDS", default=0.05)
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.RedisCacheWithFallback",  # this process's memory while Redis is down
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": f"{REDIS_KEY_PREFIX}:cache",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 1, "SOCKET_TIMEOUT": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BROKER_URL = CELERY_BROKER_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Every periodic schedule lives here, and only here.
CELERY_BEAT_SCHEDULE: dict[str, dict] = {
    # Redis publisher (core/tasks.py): outbox drain and key expiry within 60 s, hourly full reconcile.
    "redis-drain-outbox": {"task": "core.drain_outbox", "schedule": 30.0, "options": {"expires": 25}},
    "apikeys-expire": {"task": "core.expire_api_keys", "schedule": 30.0, "options": {"expires": 25}},
    "redis-reconcile": {"task": "core.reconcile_redis", "schedule": 3600.0, "options": {"expires": 1800}},
    # Usage (usage/tasks.py): release idempotency keys older than seven days.
    "usage-purge-idempotency-keys": {
        "task": "usage.tasks.purge_idempotency_keys",
        "schedule": 600.0,
        "options": {"expires": 500},
    },
    # Billing (billing/tasks.py): expire purchases never paid (frees their promotion), drop old quotes.
    "billing-expire-stale": {
        "task": "billing.tasks.expire_stale_billing",
        "schedule": 3600.0,
        "options": {"expires": 1800},
    },
}

# --- Auth ----------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "account_login"

# django-allauth (65.x settings)
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"add_email": "accounts.forms.ChangeEmailForm"}
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional" if DEBUG else "mandatory")
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Creditdesk] "
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_STORE_TOKENS = False

# --- Accounts: sign-in, lock-out, MFA, social log-in (owned by the accounts app) -------
# Client IPs (rate limits, sessions) come from X-Forwarded-For only for trusted proxies.
ALLAUTH_TRUSTED_PROXY_COUNT = TRUSTED_PROXY_COUNT
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_PREVENT_ENUMERATION = True
# Lock-out: failed log-ins per IP and per account (email), kept in the Django cache
# (Redis in production, shared by every worker). A locked account's owner is emailed.
LOGIN_FAILED_LIMIT_PER_IP = env.str("LOGIN_FAILED_LIMIT_PER_IP", default="30/10m")
LOGIN_FAILED_LIMIT_PER_ACCOUNT = env.str("LOGIN_FAILED_LIMIT_PER_ACCOUNT", default="5/15m")
ACCOUNT_RATE_LIMITS = {
    "login_failed": f"{LOGIN_FAILED_LIMIT_PER_IP}/ip,{LOGIN_FAILED_LIMIT_PER_ACCOUNT}/key",
}
USERSESSIONS_TRACK_ACTIVITY = True
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_RECOVERY_CODES_SHOW_ONCE = True
MFA_TOTP_ISSUER = "Creditdesk"
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
# Staff must have MFA to use the admin (default: in production).
ADMIN_REQUIRE_MFA = env.bool("ADMIN_REQUIRE_MFA", default=not DEBUG)
INVITATION_MAX_AGE_DAYS = 7


def social_apps(prefix: str, **extra: object) -> list[dict]:
    """One provider app when <PREFIX>_CLIENT_ID and <PREFIX>_CLIENT_SECRET are set, else none."""
    client_id = env.str(f"{prefix}_CLIENT_ID", default="")
    secret = env_secret(f"{prefix}_CLIENT_SECRET")
    return [{"client_id": client_id, "secret": secret, **extra}] if client_id and secret else []


# A provider's button shows when its app is configured here or as a SocialApp in the admin.
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "APPS": social_apps("GOOGLE"),
        "SCOPE": ["openid", "profile", "email"],
        "AUTH_PARAMS": {"access_type": "online"},
        "OAUTH_PKCE_ENABLED": True,
    },
    "github": {"APPS": social_apps("GITHUB"), "SCOPE": ["read:user", "user:email"]},
    "microsoft": {
        "APPS": social_apps("MICROSOFT", settings={"tenant": env.str("MICROSOFT_TENANT", default="common")}),
    },
    "openid_connect": {
        "APPS": social_apps(
            "LINKEDIN",
            provider_id="linkedin",
            name="LinkedIn",
            settings={"server_url": "https://www.linkedin.com/oauth", "token_auth_method": "client_secret_post"},
        ),
    },
}

# --- REST framework and the service API ----------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "core.schema.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Creditdesk API",
    "DESCRIPTION": "Service API for the public query API, and the customer API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No validator badge: on a public host Swagger UI would fetch it from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "CAMELIZE_NAMES": False,
    "COMPONENT_SPLIT_REQUEST": True,
}
API_MAX_BODY_BYTES = 5 * 1024 * 1024
# API keys: a service token is trusted this many seconds per process (a revoked token stops within it).
SERVICE_TOKEN_CACHE_SECONDS = env.int("SERVICE_TOKEN_CACHE_SECONDS", default=5)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# --- Stripe (dj-stripe) --------------------------------------------------------
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_SECRET_KEY = env_secret("STRIPE_SECRET_KEY")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
DJSTRIPE_WEBHOOK_SECRET = env_secret("STRIPE_WEBHOOK_SECRET")
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
# Billing (owned by the billing app): PayPal Orders v2, quotes and the demo sandbox.
# The sandbox provider works only while DEBUG is on and neither Stripe nor PayPal is configured.
PAYPAL_CLIENT_ID = env.str("PAYPAL_CLIENT_ID", default="")
PAYPAL_CLIENT_SECRET = env_secret("PAYPAL_CLIENT_SECRET")
PAYPAL_WEBHOOK_ID = env.str("PAYPAL_WEBHOOK_ID", default="")
PAYPAL_API_BASE = env.str("PAYPAL_API_BASE", default="https://api-m.sandbox.paypal.com")
PAYPAL_TIMEOUT_SECONDS = env.float("PAYPAL_TIMEOUT_SECONDS", default=15.0)
BILLING_QUOTE_TTL_MINUTES = env.int("BILLING_QUOTE_TTL_MINUTES", default=30)
BILLING_MIN_CUSTOM_CREDITS = env.int("BILLING_MIN_CUSTOM_CREDITS", default=10)
BILLING_MAX_CUSTOM_CREDITS = env.int("BILLING_MAX_CUSTOM_CREDITS", default=1_000_000)

# --- Email -----------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Creditdesk <no-reply@creditdesk.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)  # SMTP: a stuck server must not hold a worker (or a request)
ANYMAIL = {
    key: value
    for key, value in {
        "POSTMARK_SERVER_TOKEN": env_secret("POSTMARK_SERVER_TOKEN"),
        "MAILGUN_API_KEY": env_secret("MAILGUN_API_KEY"),
        "MAILGUN_SENDER_DOMAIN": env.str("MAILGUN_SENDER_DOMAIN", default=""),
        "SENDGRID_API_KEY": env_secret("SENDGRID_API_KEY"),
    }.items()
    if value
}
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- i18n, static ------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- Security (production) ----------------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^ready$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Logging ----------------------------------------------------------------------
JSON_LOGS = env.bool("JSON_LOGS", default=not DEBUG)
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
DJANGO_GUID = {"GUID_HEADER_NAME": "X-Request-ID", "RETURN_HEADER": True, "VALIDATE_GUID": False}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "django_guid.log_filters.CorrelationId"}},
    "formatters": {
        # Both redact full API keys from what they write (core.logging).
        "json": {
            "()": "core.logging.RedactingJsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(correlation_id)s %(message)s",
            "rename_fields": {"correlation_id": "request_id", "levelname": "level"},
        },
        "plain": {
            "()": "core.logging.RedactingFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s] %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if JSON_LOGS else "plain",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # django_guid logs "header not found, generated a new id" at INFO for every request.
        "django_guid": {"level": "WARNING"},
    },
}

# --- Usage -------------------------------------------------------------------------
# How a usage report is posted: "auto" (one prepared statement on PostgreSQL, the ORM
# elsewhere) or "orm" (the portable path everywhere; benchmarks/usage_benchmark.py compares).
USAGE_POSTING_PATH = env.str("USAGE_POSTING_PATH", default="auto")

# --- Business settings -------------------------------------------------------------
CREDIT_BASE_RATE = Decimal(env.str("CREDIT_BASE_RATE", default="0.10"))
CURRENCY = "usd"

# The email is unique case-insensitively (a functional unique constraint on Lower(email)),
# which the auth check does not recognize.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]
