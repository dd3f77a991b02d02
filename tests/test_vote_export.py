"""Votes and volunteer figures for research: pseudonymous, stable, complete, and never personal."""

import datetime as dt
import io

import pytest
from astropy.table import Table
from django.core.management import call_command
from django.utils import timezone

from labeling.models import Assignment, VolunteerProfile
from labeling.vote_export import pseudonym
from tests.api_fixtures import assert_error, token_client
from tests.factories import GalaxyFactory, StandardGalaxyFactory, VoteFactory


@pytest.fixture
def votes(alice, charlie):
    """alice votes 62.5 between standards 60 and 65 after seeing 55, 60, 65; charlie flags the same galaxy."""
    galaxy = GalaxyFactory(pgc=77)
    s55, s60, s65 = (StandardGalaxyFactory(inclination=i) for i in (55.0, 60.0, 65.0))
    now = timezone.now()
    Assignment.objects.create(
        volunteer=alice,
        galaxy=galaxy,
        token="t-alice",
        standard_ids=[s65.id, s55.id, s60.id],
        issued_at=now - dt.timedelta(minutes=2),
        expires_at=now + dt.timedelta(minutes=30),
        used_at=now,
    )
    first = VoteFactory(
        volunteer=alice, galaxy=galaxy, inclination=62.5, left_standard=s60, right_standard=s65, seconds_taken=71.0
    )
    second = VoteFactory(
        volunteer=charlie, galaxy=galaxy, inclination=None, flag="not_spiral", not_sure=True, note="me@x.org"
    )
    VolunteerProfile.objects.create(user=alice, votes_count=1, weight=3.0, gold_votes_count=2, gold_abs_error_sum=5.0)
    VolunteerProfile.objects.create(user=charlie, votes_count=1)
    return first, second


def _table(response, fmt="ecsv") -> Table:
    assert response.status_code == 200, response.content[:300]
    data = b"".join(response.streaming_content) if response.streaming else response.content
    for secret in (b"alice", b"charlie", b"example.org", b"me@x.org"):
        assert secret not in data
    return Table.read(io.BytesIO(data), format={"ecsv": "ascii.ecsv", "fits": "fits"}[fmt])


def test_staff_export_every_vote_with_pseudonyms_standards_and_time(bob, alice, charlie, votes):
    api = token_client(bob)
    table = _table(api.get("/api/research/votes/"))
    assert list(table["pgc"]) == [77, 77]
    first, second = table
    assert first["volunteer"] == pseudonym(alice.id) != second["volunteer"] == pseudonym(charlie.id)
    assert (first["inclination"], first["left_standard"], first["right_standard"]) == (62.5, 60.0, 65.0)
    assert first["standards_shown"] == "55.0,60.0,65.0"
    assert first["seconds_taken"] == 71.0 and table["seconds_taken"].unit == "s"
    assert (second["flag"], bool(second["not_sure"])) == ("not_spiral", True)
    assert table["inclination"].mask[1]
    # Stable: the same pseudonyms in a second export, in another format.
    again = _table(api.get("/api/research/votes/", {"format": "fits"}), "fits")
    assert list(again["volunteer"]) == list(table["volunteer"])


def test_volunteer_figures_use_the_same_pseudonyms(bob, alice, votes):
    table = _table(token_client(bob).get("/api/research/volunteers/"))
    row = table[list(table["volunteer"]).index(pseudonym(alice.id))]
    assert (row["weight"], row["gold_votes"], row["gold_mae"]) == (3.0, 2, 2.5)


def test_pseudonyms_differ_between_accounts_and_depend_on_the_sites_secret(settings):
    assert len({pseudonym(i) for i in range(1000)}) == 1000
    before = pseudonym(17)
    settings.SECRET_KEY = "another-site-secret-key-for-this-test-only"
    assert pseudonym(17) != before


def test_volunteers_may_not_export_votes(alice, votes):
    assert_error(token_client(alice).get("/api/research/votes/"), 403)
    assert_error(token_client(alice).get("/api/research/volunteers/"), 403)


def test_bad_format_is_a_400(bob, votes):
    error = assert_error(token_client(bob).get("/api/research/votes/", {"format": "xls"}), 400, "invalid")
    assert "format" in error["details"]


def test_command_writes_the_votes(votes, tmp_path, alice):
    out = tmp_path / "votes.fits"
    call_command("export_votes", "--format", "fits", "--out", str(out), verbosity=0)
    table = Table.read(out)
    assert pseudonym(alice.id) in list(table["volunteer"])
