"""Fixtures for the acquisition tests: the SDSS stand-in on loopback, storage in a temp folder."""

import pytest
import requests
from celery import current_app

from acquisition.services import PARTIAL_DIR
from acquisition.standin import running_standin


class Standin:
    """The running stand-in server, with helpers to script faults and read what it answered."""

    def __init__(self, server):
        self.server = server
        self.url = server.url

    def faults(self, **spec) -> None:
        response = requests.post(f"{self.url}/_faults", json=spec, timeout=5)
        assert response.status_code == 200, response.text

    def stats_reset(self) -> None:
        requests.post(f"{self.url}/_stats/reset", timeout=5)

    def stats(self) -> dict:
        return requests.get(f"{self.url}/_stats", timeout=5).json()

    def requests_made(self) -> int:
        return sum(self.stats().values())


@pytest.fixture(scope="session")
def standin_server():
    with running_standin() as server:
        server.cutout_jpeg(150.0, 2.0, 0.25, 480, 480)  # warm the renderer's caches once
        yield server


@pytest.fixture
def standin(standin_server, settings, tmp_path):
    """A clean stand-in (no faults, no counts) that the SDSS settings point at; media in tmp_path."""
    helper = Standin(standin_server)
    helper.faults(rates={}, next=[], retry_after=1, slow_s=2.5)
    helper.stats_reset()
    settings.GIZ_SDSS_CUTOUT_BASE_URL = helper.url
    settings.GIZ_SDSS_FRAMES_BASE_URL = f"{helper.url}/sas"
    settings.GIZ_HIPS2FITS_URL = f"{helper.url}/hips2fits"
    settings.GIZ_SURVEY_RATE_LIMIT = "0"
    settings.GIZ_SDSS_TIMEOUT_S = 10.0
    settings.GIZ_SDSS_FETCH_FITS = False
    settings.GIZ_SDSS_BACKOFF_BASE_S = 0.001
    settings.GIZ_SDSS_MAX_RETRIES = 4
    settings.MEDIA_ROOT = str(tmp_path / "media")
    # Eager retries raise celery.exceptions.Retry when eager errors propagate; a worker never
    # propagates, so the tests run tasks the way a worker does.
    conf = current_app.conf
    propagates, conf.task_eager_propagates = conf.task_eager_propagates, False
    yield helper
    conf.task_eager_propagates = propagates
    helper.faults(rates={}, next=[])


def media_files(root) -> list:
    """Every file under the media folder except the write-aside folder."""
    from pathlib import Path

    return sorted(p for p in Path(root).rglob("*") if p.is_file() and PARTIAL_DIR not in p.parts)
