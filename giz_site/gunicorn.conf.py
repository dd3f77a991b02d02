"""gunicorn settings: `gunicorn -c giz_site/gunicorn.conf.py giz_site.wsgi`.

The app is not preloaded: each worker process imports Django and TensorFlow itself (TensorFlow's
threads do not survive a fork) and loads and warms the active ensemble before taking requests.
"""

import os

bind = os.environ.get("GIZ_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GIZ_WEB_WORKERS", "2"))
threads = int(os.environ.get("GIZ_WEB_THREADS", "4"))
timeout = 120
preload_app = False
# Above the app's GIZ_MAX_URL_CHARS and GIZ_MAX_HEADER_CHARS, so the app refuses what is too long with a clear
# 414/431 (JSON under /api/); gunicorn's own plain 400 is left for requests past these (8190 is its maximum).
limit_request_line = 8190
limit_request_field_size = 16380


def post_worker_init(worker):
    """Runs in each worker after the app is loaded: load the models once, never per request."""
    # Imported here: gunicorn reads this file before Django is set up.
    from inference.ensemble import warm_up

    warm_up()
