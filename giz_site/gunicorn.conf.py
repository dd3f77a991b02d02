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


def post_worker_init(worker):
    """Runs in each worker after the app is loaded: load the models once, never per request."""
    from inference.ensemble import warm_up

    warm_up()
