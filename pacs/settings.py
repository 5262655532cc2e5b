"""Django settings for Vesalius PACS.

Everything is configured by environment variables (or the ``KEY=VALUE`` file named by
``PACS_CONFIG``); see ``.env.example`` for every option with its default. With no
configuration at all the PACS runs embedded: SQLite, storage and temp folders under
``PACS_DATA_DIR``, Celery on a filesystem transport [DEF-2].
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import environ

from pacs.env import (
    env_ae_title,
    env_amqp_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_path,
    env_port,
    env_str,
    load_config_file,
)

BASE_DIR = Path(__file__).resolve().parent.parent
load_config_file(os.environ.get("PACS_CONFIG"))

VERSION = "0.1.0"

# --- Folders -------------------------------------------------------------------------------
DATA_DIR = env_path("PACS_DATA_DIR", BASE_DIR / "data")
DATA_DIR.mkdir(parents=True, exist_ok=True)
LOG_DIR = env_path("PACS_LOG_DIR", DATA_DIR / "logs")
LOG_DIR.mkdir(parents=True, exist_ok=True)
# The default storage folder created on first start when no storage exists yet [DEF-2].
DEFAULT_STORAGE_DIR = env_path("PACS_STORAGE_DIR", DATA_DIR / "storage")


def _secret_key() -> str:
    """A fixed key from the environment, else one generated once and kept in the data dir."""
    from_env = os.environ.get("PACS_SECRET_KEY")
    if from_env:
        return from_env
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50), encoding="ascii")
        key_file.chmod(0o600)
    return key_file.read_text(encoding="ascii").strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("PACS_DEBUG", False)
ALLOWED_HOSTS = env_list("PACS_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("PACS_CSRF_TRUSTED_ORIGINS", [])

# --- DICOM and network defaults [DEF-1] ----------------------------------------------------
PACS_AE_TITLE = env_ae_title("PACS_AE_TITLE", "VESALIUS")
PACS_DICOM_HOST = env_str("PACS_DICOM_HOST", "0.0.0.0")
PACS_DICOM_PORT = env_port("PACS_DICOM_PORT", 3000)
PACS_MWL_PORT = env_port("PACS_MWL_PORT", 3001)
PACS_DICOM_TLS_PORT = env_port("PACS_DICOM_TLS_PORT", 3100)
PACS_MWL_TLS_PORT = env_port("PACS_MWL_TLS_PORT", 3101)
PACS_HTTP_PORT = env_port("PACS_HTTP_PORT", 8000)
PACS_DICOMWEB_PORT = env_port("PACS_DICOMWEB_PORT", 8010, allow_zero=True)
# DICOMweb at the root of its own port [WEB-3] (always under /dicomweb/ on the web port too);
# port 0 also turns it off. Read at start: a change needs a restart.
PACS_DICOMWEB_ENABLED = env_bool("PACS_DICOMWEB_ENABLED", True) and PACS_DICOMWEB_PORT != 0
PACS_SCP_PROCESSES = env_int("PACS_SCP_PROCESSES", os.cpu_count() or 1, minimum=1, maximum=256)
PACS_SCP_MAX_ASSOCIATIONS = env_int("PACS_SCP_MAX_ASSOCIATIONS", 64, minimum=1, maximum=4096)
PACS_MAX_PDU = env_int("PACS_MAX_PDU", 262144, minimum=0, maximum=2**32 - 1)
PACS_DIMSE_TIMEOUT = env_int("PACS_DIMSE_TIMEOUT", 60, minimum=1, maximum=3600)
PACS_NETWORK_TIMEOUT = env_int("PACS_NETWORK_TIMEOUT", 60, minimum=1, maximum=3600)
PACS_DRAIN_SECONDS = env_int("PACS_DRAIN_SECONDS", 30, minimum=0, maximum=3600)
PACS_ADMIN_PASSWORD = os.environ.get("PACS_ADMIN_PASSWORD") or None
PACS_PAGE_SIZE = env_int("PACS_PAGE_SIZE", 15, minimum=1, maximum=1000)

# Runtime settings (the RuntimeSettings row): these environment variables, when set,
# are applied to the row at every process start; otherwise the row keeps what was
# saved through the API. See pacs/config.py.
PACS_RUNTIME_ENV = {
    "ae_title": ("PACS_AE_TITLE", lambda: PACS_AE_TITLE),
    "accept_any_ae": ("PACS_ACCEPT_ANY_AE", lambda: env_bool("PACS_ACCEPT_ANY_AE", False)),
    "accession_crop": ("PACS_ACCESSION_CROP", lambda: env_bool("PACS_ACCESSION_CROP", False)),
    "overwrite_image": ("PACS_OVERWRITE_IMAGE", lambda: env_bool("PACS_OVERWRITE_IMAGE", False)),
    "free_space_limit_mb": (
        "PACS_FREE_SPACE_LIMIT_MB",
        lambda: env_int("PACS_FREE_SPACE_LIMIT_MB", 2048, minimum=0, maximum=2**40),
    ),
    "critical_free_space_mb": (
        "PACS_CRITICAL_FREE_SPACE_MB",
        lambda: env_int("PACS_CRITICAL_FREE_SPACE_MB", 256, minimum=0, maximum=2**40),
    ),
    "temp_dir": ("PACS_TEMP_DIR", lambda: str(env_path("PACS_TEMP_DIR", DATA_DIR / "temp"))),
}

# RabbitMQ link to a RIS [AMQP-1]: when set, these give the AmqpSettings row its values at
# every process start (pacs.config.apply_environment); the event toggles default to on.
PACS_AMQP_ENABLED = env_bool("PACS_AMQP_ENABLED", False)
PACS_AMQP_URL = env_amqp_url("PACS_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

# Read each runtime option once here so that a bad value stops every process at start-up,
# not only the ones that apply them.
for _env_name, _read in PACS_RUNTIME_ENV.values():
    _read()

# --- Django --------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "pacs",
    "devices",
    "storages",
    "studies",
    "worklist",
    "tasks",
    "dicomweb",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ (the API docs page, later the console) from gunicorn itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # Requests on the DICOMweb port get the DICOMweb URL map at the root [WEB-3].
    "dicomweb.middleware.DicomwebPortMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "pacs.urls"
WSGI_APPLICATION = "pacs.wsgi.application"

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
            ]
        },
    }
]

_env = environ.Env()
DATABASES = {"default": _env.db_url("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets readers run beside the SCP's writers; IMMEDIATE avoids the deadlock-prone
    # read-then-upgrade lock; the busy timeout makes writers from several SCP processes
    # wait for each other instead of failing.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
    # Keep each thread's connection (the SCP closes it when the association ends).
    DATABASES["default"]["CONN_MAX_AGE"] = 600
    # A file (not :memory:) so that SCP threads in tests share it; one per test run so
    # that concurrent runs do not collide.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / f"test-db-{os.getpid()}.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
    DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("pt", "Português")]
TIME_ZONE = env_str("PACS_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
# Also serve from the apps' static folders, so /static/ works before collectstatic has run.
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_NAME = "vesalius_session"
CSRF_COOKIE_NAME = "csrftoken"
# The master cookie [WEB-2]: integrations send it instead of logging in.
PACS_MASTER_COOKIE_NAME = "vesalius_master"

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.BasicAuthentication",
        "pacs.api.authentication.CsrfSessionAuthentication",
        "pacs.api.authentication.MasterCookieAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "pacs.api.pagination.PageNumberPagination",
    "PAGE_SIZE": PACS_PAGE_SIZE,
    "EXCEPTION_HANDLER": "pacs.api.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Vesalius PACS API",
    "DESCRIPTION": "REST API of the Vesalius PACS console. Errors are JSON: "
    '{"message": "...", "errors": {"field": ["..."]}}.',
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"StepStatusEnum": "worklist.choices.StepStatus"},
}

CORS_ALLOWED_ORIGINS = env_list("PACS_CORS_ALLOWED_ORIGINS", [])
CORS_ALLOW_CREDENTIALS = True
# "*" allows every origin (e.g. a viewer on another host); the console's own origin is always
# allowed (dicomweb.middleware). DICOMweb clients read the Warning header (PS3.18 8.4.3).
CORS_ALLOW_ALL_ORIGINS = "*" in CORS_ALLOWED_ORIGINS
CORS_ALLOWED_ORIGINS = [origin for origin in CORS_ALLOWED_ORIGINS if origin != "*"]
CORS_EXPOSE_HEADERS = ["Warning", "Content-Location"]

# --- Celery --------------------------------------------------------------------------------
_celery_queue_dir = DATA_DIR / "celery"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL == "filesystem://":
    for sub in ("out", "processed"):
        (_celery_queue_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_queue_dir / "out"),
        "data_folder_out": str(_celery_queue_dir / "out"),
        "processed_folder": str(_celery_queue_dir / "processed"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# --- Logging [SET-2] -----------------------------------------------------------------------
PACS_LOG_LEVEL = env_choice(
    "PACS_LOG_LEVEL", "INFO", ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR", "FATAL")
)
_python_level = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}.get(
    PACS_LOG_LEVEL, PACS_LOG_LEVEL
)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "standard": {
            "format": "%(asctime)s %(levelname)s [%(process)d %(name)s] %(message)s",
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "standard"},
        "file": {
            "class": "logging.handlers.WatchedFileHandler",
            "filename": str(LOG_DIR / "pacs.log"),
            "formatter": "standard",
        },
    },
    "root": {"handlers": ["console", "file"], "level": _python_level},
    "loggers": {
        # pynetdicom logs every PDU at DEBUG and patient identifiers at INFO; keep it quiet.
        "pynetdicom": {"level": "WARNING"},
        "django.db.backends": {"level": "INFO"},
    },
}
