"""System checks for the SDSS acquisition settings: caught at start-up, not at the first download."""

import re
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, register

from acquisition.sdss import parse_rate


@register(Tags.compatibility)
def check_sdss_settings(app_configs, **kwargs):
    errors = []
    for name in ("GIZ_SDSS_CUTOUT_BASE_URL", "GIZ_SDSS_FRAMES_BASE_URL", "GIZ_HIPS2FITS_URL"):
        url = getattr(settings, name)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            errors.append(
                Error(
                    f"{name}={url!r} is not an http(s) URL.",
                    hint="e.g. https://skyserver.sdss.org, or http://127.0.0.1:8765 for the stand-in.",
                    id="giz.acquisition.E001",
                )
            )
    for name in ("GIZ_SDSS_RATE_LIMIT", "GIZ_SURVEY_RATE_LIMIT"):
        try:
            parse_rate(getattr(settings, name))
        except ValueError:
            errors.append(
                Error(
                    f"{name}={getattr(settings, name)!r} is not a rate.",
                    hint="Requests per second per worker process, like 10/s, 300/m or 5000/h (0: no limit).",
                    id="giz.acquisition.E002",
                )
            )
    if not re.fullmatch(r"dr\d+", settings.GIZ_SDSS_DATA_RELEASE):
        errors.append(
            Error(
                f"GIZ_SDSS_DATA_RELEASE={settings.GIZ_SDSS_DATA_RELEASE!r} is not an SDSS data release.",
                hint="Like dr16, dr17 or dr18.",
                id="giz.acquisition.E003",
            )
        )
    return errors
