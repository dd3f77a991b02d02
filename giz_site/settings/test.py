"""Test settings: a throwaway data folder, fast hashing, loose throttles.

The database is PostgreSQL when DATABASE_URL points at it (scripts/test.sh does so when a server answers).
"""

import os
import tempfile

os.environ.setdefault("GIZ_DATA_DIR", tempfile.mkdtemp(prefix="giz-test-"))
os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-secret-key-not-for-production")

from giz_site.settings.base import *  # noqa: F403
from giz_site.settings.base import REST_FRAMEWORK

# Tests change standards and refits between requests: read them afresh (tests/test_process_cache.py sets it).
GIZ_PROCESS_CACHE_S = 0.0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"anon": "10000/min", "user": "10000/min"},
}

# Tasks run inline unless a test starts a real worker (tests/services.py); that worker and the
# test process then share GIZ_TEST_BROKER_URL (Redis when scripts/test.sh finds one).
CELERY_BROKER_URL = os.environ.get("GIZ_TEST_BROKER_URL", "memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
