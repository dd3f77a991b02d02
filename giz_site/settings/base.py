"""Settings shared by every environment, read from environment variables (see docs/CONFIGURATION.md)."""

from pathlib import Path

from kombu import Queue

from giz_site.env import (
    env_bool,
    env_cache,
    env_database,
    env_float,
    env_int,
    env_json,
    env_list,
    env_secret,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent.parent

# The data folder is the design's "shared storage": database, media (images, model files), broker, logs.
DATA_DIR = Path(env_str("GIZ_DATA_DIR", str(BASE_DIR / "var"))).resolve()

# ------------------------------------------------------------------------------ Django core
DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_secret("DJANGO_SECRET_KEY", fallback_file=DATA_DIR / "secret_key")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and Redoc assets served locally, not from a CDN
    "django_celery_beat",
    "corsheaders",
    "axes",
    "giz_site.apps.SiteConfig",
    "labeling",
    "inference",
    "acquisition",
]

MIDDLEWARE = [
    "giz_site.middleware.RequestLimitsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires: turns a lockout into its answer
]

# Longer URLs (path and query) answer 414, longer header values 431; gunicorn's own limits are above these.
GIZ_MAX_URL_CHARS = env_int("GIZ_MAX_URL_CHARS", 4096, minimum=256)
GIZ_MAX_HEADER_CHARS = env_int("GIZ_MAX_HEADER_CHARS", 8190, minimum=256)

ROOT_URLCONF = "giz_site.urls"
WSGI_APPLICATION = "giz_site.wsgi.application"

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
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# ------------------------------------------------------------------------------ Database
# SQLite in the data folder needs no server; DATABASE_URL=postgres://... for real deployments.
DATABASES = {"default": env_database("DATABASE_URL", f"sqlite:///{DATA_DIR / 'giz.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web server, worker and beat share one file: wait for locks and take them up front.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60, minimum=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# ------------------------------------------------------------------------------ Cache
# Throttle counters and login lockouts must be shared by every web process: a file cache in the data folder
# on the embedded default, Redis (GIZ_CACHE_URL=redis://host:6379/1) in production.
CACHES = {"default": env_cache("GIZ_CACHE_URL", f"filecache://{DATA_DIR / 'cache'}")}

# ------------------------------------------------------------------------------ Auth
# Proxies in front of the app that append to X-Forwarded-For (1 behind one TLS proxy). The client address is
# the one the outermost trusted proxy saw; with 0 the header is ignored, as a client can write anything there.
GIZ_NUM_PROXIES = env_int("GIZ_NUM_PROXIES", 0, minimum=0)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # refuses logins while an account or address is locked out
    "django.contrib.auth.backends.ModelBackend",
]
# django-axes: failed logins (the website, the admin, POST /api/auth/token/) are counted per account and per
# address; past the limit both are refused for the cool-off time, and each further failure restarts it.
AXES_FAILURE_LIMIT = env_int("GIZ_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = env_float("GIZ_LOGIN_COOLOFF_MIN", 15.0, minimum=0.1) / 60.0  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "giz_site.throttling.client_ip"
AXES_LOCKOUT_CALLABLE = "giz_site.throttling.lockout_response"
AXES_USERNAME_FORM_FIELD = "username"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# ------------------------------------------------------------------------------ E-mail
# Console by default so password resets and alarm mails are visible without a mail server.
EMAIL_BACKEND = env_str("DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("DJANGO_EMAIL_PORT", 25, minimum=1)
DEFAULT_FROM_EMAIL = env_str("DJANGO_DEFAULT_FROM_EMAIL", "Galaxy Inclination Zoo <noreply@localhost>")

# ------------------------------------------------------------------------------ Static and media storage
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_DIR / "media"
GIZ_STORAGE_BACKEND = env_str("GIZ_STORAGE_BACKEND", "local")
if GIZ_STORAGE_BACKEND == "local":
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
elif GIZ_STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("GIZ_S3_BUCKET"),
            "endpoint_url": env_str("GIZ_S3_ENDPOINT_URL", "") or None,
            "region_name": env_str("GIZ_S3_REGION", "") or None,
            "file_overwrite": False,
        },
    }
else:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"GIZ_STORAGE_BACKEND={GIZ_STORAGE_BACKEND!r}: use 'local' or 's3'.")
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("GIZ_UPLOAD_MAX_BYTES", 20 * 2**20, minimum=1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE

# ------------------------------------------------------------------------------ Celery
# The filesystem transport keeps the embedded default server-free; redis:// or amqp:// in production.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = DATA_DIR / "broker"
    # kombu's filesystem transport does not create its folders; without them every send fails.
    for _folder in ("queue", "processed", "control"):
        (_broker_dir / _folder).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # default is ./control in the working directory
        "store_processed": False,
        # kombu sleeps this long whenever every queue is empty (1 s by default): a chain of tasks, each queued by
        # the one before, then moved about 2 per second. At 0.05 s: 32 tasks/s, 0.4% CPU idle (bench_broker.py).
        "polling_interval": env_float("GIZ_FILESYSTEM_BROKER_POLL_S", 0.05, minimum=0.01),
    }
# Four queues, so beat's backstops never wait behind bulk downloads, predictions or a training run. A worker
# started without -Q consumes them all (the embedded default); a deployment gives each its own worker.
CELERY_TASK_QUEUES = [Queue(name) for name in ("acquisition", "inference", "training", "maintenance")]
CELERY_TASK_DEFAULT_QUEUE = "maintenance"
CELERY_TASK_ROUTES = {
    "acquisition.tasks.acquire_galaxy": {"queue": "acquisition"},
    "acquisition.tasks.acquire_job": {"queue": "acquisition"},
    "inference.tasks.predict_galaxy_task": {"queue": "inference"},
    "inference.tasks.predict_pending_task": {"queue": "inference"},
    # Beat's prediction backstop predicts a whole batch itself: bulk work, not a quick check.
    "inference.tasks.predict_missing": {"queue": "inference"},
    "inference.tasks.inference_job_task": {"queue": "inference"},
    "inference.tasks.table_job_task": {"queue": "inference"},
    "inference.tasks.catalog_export_run_task": {"queue": "inference"},
    "inference.tasks.train_task": {"queue": "training"},
    # Evaluations predict with the preloaded ensemble, as the inference workers hold it.
    "inference.tasks.survey_evaluate_task": {"queue": "inference"},
    "acquisition.tasks.acquire_missing": {"queue": "maintenance"},
    "inference.tasks.training_backstop_task": {"queue": "maintenance"},
    "inference.tasks.alarm_email_task": {"queue": "maintenance"},
    "labeling.tasks.recompute_consensus": {"queue": "maintenance"},
    "giz_site.tasks.worker_heartbeat": {"queue": "maintenance"},
}
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_IGNORE_RESULT = CELERY_RESULT_BACKEND is None
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_ACKS_LATE = True  # a killed worker's task goes back to the queue
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Backstops: beat copies these into django-celery-beat's tables, where staff can edit them.
CELERY_BEAT_SCHEDULE = {
    "worker-heartbeat": {"task": "giz_site.tasks.worker_heartbeat", "schedule": 60.0},
    # Retraining starts on new labels; this catches missed triggers and killed runs.
    "training-backstop": {"task": "inference.tasks.training_backstop_task", "schedule": 60.0},
    # New images are predicted when acquisition announces them; this catches announcements lost on the way.
    "predict-missing": {"task": "inference.tasks.predict_missing", "schedule": 300.0},
    "acquire-missing-images": {"task": "acquisition.tasks.acquire_missing", "schedule": 60.0},
    "labeling-recompute-consensus": {"task": "labeling.tasks.recompute_consensus", "schedule": 24 * 3600.0},
}

# ------------------------------------------------------------------------------ REST framework
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "giz_site.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "giz_site.exceptions.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "giz_site.parsers.LimitedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": [
        "giz_site.throttles.AnonRateThrottle",
        "giz_site.throttles.UserRateThrottle",
    ],
    "NUM_PROXIES": GIZ_NUM_PROXIES,
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("GIZ_THROTTLE_ANON", "60/min"),
        "user": env_str("GIZ_THROTTLE_USER", "600/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Galaxy Inclination Zoo API",
    "DESCRIPTION": "Galaxies, volunteer votes, CNN inclination predictions and alarms.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,  # multipart uploads get a binary "file" in the request schema
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "giz_site.api_schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "ModelKindEnum": "inference.models.ModelVersion.Kind",
        "ModelStatusEnum": "inference.models.ModelVersion.Status",
        "ModelFileFormatEnum": "inference.models.ModelVersion.Format",
        "AlarmKindEnum": "inference.models.DiscrepancyAlarm.Kind",
        "BatchJobKindEnum": "inference.apis.BATCH_JOB_KINDS",
        "RunStatusEnum": "giz_site.models.BackgroundRun.Status",
        "TrainingTriggerEnum": "inference.models.TrainingRun.Trigger",
        "SurveyEvaluationTriggerEnum": "inference.models.SurveyEvaluation.Trigger",
    },
}
# Deeper JSON is refused with a 400 before parsing (Python's parser recurses once per level).
GIZ_JSON_MAX_DEPTH = env_int("GIZ_JSON_MAX_DEPTH", 32, minimum=2)
GIZ_JSON_MAX_BYTES = env_int("GIZ_JSON_MAX_BYTES", 2**20, minimum=1024)  # 10,000 PGCs of a job fit 20 times
CORS_ALLOWED_ORIGINS = env_list("GIZ_CORS_ALLOWED_ORIGINS", [])  # closed unless listed

# ------------------------------------------------------------------------------ Domain: images
GIZ_IMAGE_MAX_BYTES = env_int("GIZ_IMAGE_MAX_BYTES", 20 * 2**20, minimum=1024)
# 2048 x 2048 (all planes counted): the largest SkyServer cutout, and about 1 s of CPU for the worst upload.
GIZ_IMAGE_MAX_PIXELS = env_int("GIZ_IMAGE_MAX_PIXELS", 2048 * 2048, minimum=64 * 64)
GIZ_MODEL_INPUT_SIZE = env_int("GIZ_MODEL_INPUT_SIZE", 128, minimum=16)

# ------------------------------------------------------------------------------ Domain: labeling
# A galaxy retires when its posterior sigma is at or below this (deg), or its category is 95% sure.
GIZ_RETIRE_SD = env_float("GIZ_RETIRE_SD", 2.0, minimum=0.0)
# Votes a galaxy is served for at once (open assignments reserve them); while its posterior is wider than
# GIZ_RETIRE_SD it asks for one more at a time, and it may retire earlier.
GIZ_VOTES_TO_RETIRE = env_int("GIZ_VOTES_TO_RETIRE", 3, minimum=1)
# Most votes a galaxy gets: then it retires whatever its posterior.
GIZ_VOTES_MAX = env_int("GIZ_VOTES_MAX", 9, minimum=1)
# How long a served galaxy stays reserved for its volunteer (s).
GIZ_ASSIGNMENT_TTL_S = env_int("GIZ_ASSIGNMENT_TTL_S", 1800, minimum=60)
# Each web process keeps what every assignment or vote reads and what changes rarely (the active standards, the
# volunteer model's parameters from the last refit) this long: a staff edit or a refit shows everywhere within it.
GIZ_PROCESS_CACHE_S = env_float("GIZ_PROCESS_CACHE_S", 30.0, minimum=0.0)
# A missing or stale CSRF token gets a page that tells the volunteer what to do, not Django's bare 403.
CSRF_FAILURE_VIEW = "labeling.views.csrf_failure"

# ------------------------------------------------------------------------------ Domain: models and alarms
GIZ_MODELS_DIR = "models"  # inside default storage
GIZ_RETRAIN_AFTER_LABELS = env_int("GIZ_RETRAIN_AFTER_LABELS", 1000, minimum=1)
GIZ_ALARM_SPREAD_DEG = env_float("GIZ_ALARM_SPREAD_DEG", 5.0, minimum=0.0)
GIZ_ALARM_HUMAN_DIFF_DEG = env_float("GIZ_ALARM_HUMAN_DIFF_DEG", 8.0, minimum=0.0)
GIZ_ALARM_EMAILS = env_list("GIZ_ALARM_EMAILS", [])
# How often each process checks whether the set of active model versions changed (seconds).
GIZ_ENSEMBLE_CHECK_S = env_float("GIZ_ENSEMBLE_CHECK_S", 5.0, minimum=0.0)
# Training size: "standard" (retraining), "quick" (pretrain_ensemble on a fresh site), "tiny" (tests).
GIZ_TRAINING_PROFILE = env_str("GIZ_TRAINING_PROFILE", "standard")
# A live training run without a heartbeat for this long is considered killed and is queued again.
# A live run's worker stamps its heartbeat every GIZ_TRAINING_HEARTBEAT_S from a thread of its own (an epoch can
# take minutes); beat's backstop (every minute) re-queues a run silent for GIZ_TRAINING_STALE_S. A worker that
# starts again under its node name re-queues its dead incarnation's runs at once (giz_site.celery), so these two
# time only the recovery from a worker that never comes back (60-120 s). Not tightened to 10 s / 45 s: that gains
# 15 s there, while a run declared dead while alive (a paused VM, a database failover, a starved thread) is taken
# over and trained by a second process, and survey evaluations share the stale time but beat only per batch of
# predictions (no thread), slower on a loaded machine.
GIZ_TRAINING_HEARTBEAT_S = env_float("GIZ_TRAINING_HEARTBEAT_S", 15.0, minimum=0.05)
GIZ_TRAINING_STALE_S = env_int("GIZ_TRAINING_STALE_S", 60, minimum=60)
GIZ_INFERENCE_BATCH_SIZE = env_int("GIZ_INFERENCE_BATCH_SIZE", 64, minimum=1)
# Newly stored images are predicted in batches: the first image of a burst queues a task that waits this long
# (seconds) for the others, then predicts up to GIZ_INFERENCE_BATCH_SIZE of them in one pass.
GIZ_PREDICT_BATCH_WAIT_S = env_float("GIZ_PREDICT_BATCH_WAIT_S", 5.0, minimum=0.0)
# Surveys (issue 13): the active ensemble is evaluated on a survey once it has this many accepted consensus labels
# (and again after every training run that changes the ensemble); a survey whose RMS is worse than the reference
# survey's by more than the margin is marked "needs adaptation".
GIZ_SURVEY_EVAL_MIN_LABELS = env_int("GIZ_SURVEY_EVAL_MIN_LABELS", 200, minimum=1)
GIZ_SURVEY_EVAL_MARGIN_DEG = env_float("GIZ_SURVEY_EVAL_MARGIN_DEG", 0.5, minimum=0.0)
# A survey needing adaptation gets a fine-tuning run once it has this many new accepted labels; the adapted
# members are promoted only if better on it and no worse, by more than the tolerance, anywhere else.
GIZ_SURVEY_ADAPT_MIN_LABELS = env_int("GIZ_SURVEY_ADAPT_MIN_LABELS", 1000, minimum=1)
GIZ_SURVEY_ADAPT_TOLERANCE_DEG = env_float("GIZ_SURVEY_ADAPT_TOLERANCE_DEG", 0.2, minimum=0.0)
# Fine-tuning forgets the reference survey unless it keeps seeing it (issue 13's first run: +0.54 deg on SDSS-look
# galaxies with 18% replay at 3e-4). This share of the training images is replay of the reference survey: its own
# train-split labels, topped up with synthetic SDSS-look galaxies of the sources the members learned from.
GIZ_SURVEY_ADAPT_REPLAY_FRACTION = env_float("GIZ_SURVEY_ADAPT_REPLAY_FRACTION", 0.4, minimum=0.0)
GIZ_SURVEY_ADAPT_REPLAY_SOURCES = env_list("GIZ_SURVEY_ADAPT_REPLAY_SOURCES", ["ours", "galsim"])
# Peak learning rate of the fine-tuning (cosine decay); a run's config "learning_rate" overrides it.
GIZ_SURVEY_ADAPT_LEARNING_RATE = env_float("GIZ_SURVEY_ADAPT_LEARNING_RATE", 1e-4, minimum=0.0)
# Each member keeps its epoch best on the adapted survey's validation images among those at most this much worse
# (RMS) than its starting weights on reference validation images; the starting weights are a candidate. The gate's
# tolerance by default: at 0.1 every epoch of all three members was refused in the benchmark (docs/BENCHMARKS.md).
GIZ_SURVEY_ADAPT_GUARD_DEG = env_float("GIZ_SURVEY_ADAPT_GUARD_DEG", GIZ_SURVEY_ADAPT_TOLERANCE_DEG, minimum=0.0)
# How each survey's synthetic galaxies are rendered for its adaptation, by slug (acquisition.population.SurveyLook:
# pixel_scale, seeing [lo, hi], stretch, softening, band_scales [g, r, i], noise, sky_level), e.g.
# {"legacy": {"seeing": [1.0, 1.6], "stretch": 1.3}}. The survey's own pixel scale is used unless given here.
GIZ_SURVEY_LOOKS = env_json("GIZ_SURVEY_LOOKS", {})

# ------------------------------------------------------------------------------ Domain: SDSS acquisition
GIZ_SDSS_CUTOUT_BASE_URL = env_str("GIZ_SDSS_CUTOUT_BASE_URL", "https://skyserver.sdss.org")
GIZ_SDSS_FRAMES_BASE_URL = env_str("GIZ_SDSS_FRAMES_BASE_URL", "https://data.sdss.org/sas")
GIZ_SDSS_DATA_RELEASE = env_str("GIZ_SDSS_DATA_RELEASE", "dr16")
GIZ_SDSS_TIMEOUT_S = env_float("GIZ_SDSS_TIMEOUT_S", 20.0, minimum=0.1)
GIZ_SDSS_RATE_LIMIT = env_str("GIZ_SDSS_RATE_LIMIT", "10/s")  # SDSS requests per worker process
GIZ_SDSS_FOV_FACTOR = env_float("GIZ_SDSS_FOV_FACTOR", 2.0, minimum=1.0)  # stamp field of view in units of D25
GIZ_SDSS_FETCH_FITS = env_bool("GIZ_SDSS_FETCH_FITS", True)  # g, r, i FITS stamps besides the colour JPEG
GIZ_SDSS_MAX_RETRIES = env_int("GIZ_SDSS_MAX_RETRIES", 8, minimum=0)  # transient failures, then recorded
# A blank cutout is outside the footprint only if it stays blank: a few tries, then recorded as permanent.
GIZ_SDSS_BLANK_RETRIES = env_int("GIZ_SDSS_BLANK_RETRIES", 2, minimum=0)
GIZ_SDSS_BACKOFF_BASE_S = env_float("GIZ_SDSS_BACKOFF_BASE_S", 2.0, minimum=0.0)  # doubled per retry, with jitter
GIZ_SDSS_BACKOFF_MAX_S = env_float("GIZ_SDSS_BACKOFF_MAX_S", 600.0, minimum=0.0)
# Other surveys (labeling.models.Survey): HiPS ones through the CDS hips2fits service, or a survey's own URL template.
# Timeouts, retries and GIZ_SDSS_FETCH_FITS (band stamps) are the SDSS ones.
GIZ_HIPS2FITS_URL = env_str("GIZ_HIPS2FITS_URL", "https://alasky.cds.unistra.fr/hips-image-services/hips2fits")
GIZ_SURVEY_RATE_LIMIT = env_str("GIZ_SURVEY_RATE_LIMIT", "5/s")  # hips2fits/template requests per worker process
GIZ_ACQUIRE_BACKSTOP_BATCH = env_int("GIZ_ACQUIRE_BACKSTOP_BATCH", 500, minimum=1)  # galaxies per beat run
GIZ_ACQUIRE_STALE_S = env_int("GIZ_ACQUIRE_STALE_S", 1800, minimum=60)  # claimed, never started: queued again
# A started fetch whose lease lapsed (its task renews it every third of this while it lives, so: its process died)
# is queued again by the next backstop: a killed fetch is recovered within this plus the backstop's period (60 s).
GIZ_ACQUIRE_FETCH_STALE_S = env_int("GIZ_ACQUIRE_FETCH_STALE_S", 20, minimum=3)

# ------------------------------------------------------------------------------ Logging
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("GIZ_LOG_LEVEL", "INFO")},
}
