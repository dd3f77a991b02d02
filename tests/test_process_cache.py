"""Each web process keeps the standards and the volunteer model's parameters for GIZ_PROCESS_CACHE_S: edits show
within that period, and an assignment whose standards changed meanwhile still shows and accepts them."""

from unittest import mock

import pytest

from acquisition import apis as acquisition_apis
from labeling import selectors
from labeling.models import ConsensusRun, StandardGalaxy, Vote
from tests.api_fixtures import standards_grid, token_client
from tests.factories import GalaxyFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def kept(settings):
    """The caches on, as in production, on a clock the test moves."""
    settings.GIZ_PROCESS_CACHE_S = 30.0
    caches = [selectors._standards_active, selectors._model_state_kept, acquisition_apis._standards_shown]
    for cache in caches:
        cache.clear()
    now = [1000.0]
    with mock.patch("giz_site.process_cache.time.monotonic", lambda: now[0]):
        yield now
    for cache in caches:
        cache.clear()


def test_a_staff_edit_of_the_standards_shows_within_the_period(alice, kept):
    standards_grid()
    GalaxyFactory.create_batch(3, with_image=True)
    client = token_client(alice)
    first = client.get("/api/assignments/next/").json()
    hidden = StandardGalaxy.objects.get(pk=first["grid"]["60"])
    StandardGalaxy.objects.filter(pk=hidden.pk).update(active=False)
    client.post("/api/votes/", {"token": first["token"], "flag": "not_spiral"}, format="json")

    kept[0] += 29  # still the process's copy: the deactivated standard may be drawn
    assert hidden.pk in selectors.standards_active()
    kept[0] += 2  # the period is over: read afresh
    assert hidden.pk not in selectors.standards_active()
    second = client.get("/api/assignments/next/").json()
    assert hidden.pk not in {s["id"] for s in second["standards"]}


def test_a_standard_deactivated_after_serving_is_still_shown_and_accepted(alice, kept):
    standards_grid()
    GalaxyFactory(with_image=True)
    client = token_client(alice)
    served = client.get("/api/assignments/next/").json()
    left, right = served["grid"]["60"], served["grid"]["61"]
    StandardGalaxy.objects.filter(pk__in=[left, right]).update(active=False)
    kept[0] += 31
    again = client.get("/api/assignments/next/").json()  # the open assignment, served again
    assert again["token"] == served["token"]
    assert {left, right} <= {s["id"] for s in again["standards"]}  # read for it, not from the active copy
    answer = {"token": served["token"], "inclination": 60.5, "left_standard_id": left, "right_standard_id": right}
    response = client.post("/api/votes/", answer, format="json")
    assert response.status_code == 201, response.content
    assert Vote.objects.filter(left_standard_id=left, right_standard_id=right, inclination=60.5).exists()


def test_the_volunteer_models_parameters_of_a_new_refit_are_used_after_the_period(kept):
    before = selectors.model_state_kept()
    ConsensusRun.objects.create(
        status="succeeded", live=None, growth=0.123, class_prior=[0.5, 0.25, 0.25], sigma_typical=3.3
    )
    assert selectors.model_state_kept() == before != selectors.model_state()
    kept[0] += 31
    assert selectors.model_state_kept() == selectors.model_state()
    assert selectors.model_state_kept().growth == 0.123
