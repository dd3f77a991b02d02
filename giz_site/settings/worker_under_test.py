"""Settings for a real Celery worker process started by a test: test settings, real broker, no eager mode."""

import os

from giz_site.settings.test import *  # noqa: F403

CELERY_BROKER_URL = os.environ["GIZ_TEST_BROKER_URL"]
CELERY_TASK_ALWAYS_EAGER = False
