"""The IVOA cone search and VOSI endpoints, queried the way astronomers do: pyvo against a live server."""

import io

import pytest
import pyvo
import requests
from astropy.io.votable import parse
from pyvo.io import vosi

from inference import catalog_vo
from labeling.models import Galaxy
from tests.catalog_fixtures import catalogue  # noqa: F401

CONE = "/api/catalog/cone/"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("catalogue")
# pyvo's VOSI parser does not know the ConeSearch extension's elements (maxSR, testQuery...), valid per its schema.
@pytest.mark.filterwarnings("ignore::pyvo.utils.xml.exceptions.UnknownElementWarning")
@pytest.mark.filterwarnings("ignore:Unknown xsi.type cs.ConeSearch ignored:UserWarning")
def test_pyvo_queries_the_live_cone_search_and_reads_the_vosi_endpoints(live_server):
    url = f"{live_server.url}{CONE}"
    service = pyvo.dal.SCSService(url)
    results = service.search(pos=(150.0, 2.0), radius=0.15)
    table = results.to_table()
    # Nearest first: 10 is at the centre, 11 at 0.14 deg; 12 (0.22 deg) and 13 (0.2 deg) are outside.
    assert list(table["pgc"]) == [10, 11]
    assert list(table["_r"]) == pytest.approx([0.0, 0.1414], abs=1e-3)
    assert table["inclination"].unit == "deg"
    assert results.fieldname_with_ucd("ID_MAIN") == "pgc"
    assert results.fieldname_with_ucd("POS_EQ_RA_MAIN") == "ra"
    assert results.fieldname_with_ucd("POS_EQ_DEC_MAIN") == "dec"

    with pytest.raises(pyvo.dal.DALQueryError, match=r"SR=20 is out of range: it must be in \[0, 10\] degrees"):
        service.search(pos=(150.0, 2.0), radius=20)

    capabilities = vosi.parse_capabilities(
        io.BytesIO(requests.get(f"{live_server.url}/api/catalog/vosi/capabilities/", timeout=10).content)
    )
    cone = next(c for c in capabilities if c.standardid == "ivo://ivoa.net/std/ConeSearch")
    assert cone.interfaces[0].accessurls[0].content == f"{url}?"
    availability = vosi.parse_availability(
        io.BytesIO(requests.get(f"{live_server.url}/api/catalog/vosi/availability/", timeout=10).content)
    )
    assert availability.available is True


def _votable(response):
    assert response.status_code == 200
    assert response["Content-Type"] == catalog_vo.VOTABLE_TYPE
    return parse(io.BytesIO(response.content))


def _status(votable) -> tuple[str, str]:
    infos = {info.name: info for info in votable.resources[0].infos}
    return infos["QUERY_STATUS"].value, (infos["QUERY_STATUS"].content or "")


@pytest.mark.usefixtures("catalogue")
@pytest.mark.parametrize(
    "query, message",
    [
        ("DEC=2&SR=1", "RA is required"),
        ("RA=abc&DEC=2&SR=1", "RA='abc' is not a number"),
        ("RA=150&DEC=91&SR=1", "DEC=91 is out of range: it must be in [-90, 90] degrees"),
        ("RA=-1&DEC=2&SR=1", "RA=-1 is out of range"),
        ("RA=150&DEC=2&SR=-1", "SR=-1 is out of range"),
        ("RA=150&DEC=2&SR=nan", "SR=nan is out of range"),
        ("RA=150&DEC=2&SR=1&VERB=9", "VERB='9' must be 1, 2 or 3"),
    ],
)
def test_bad_cone_parameters_answer_the_standard_error_votable(client, query, message):
    votable = _votable(client.get(f"{CONE}?{query}"))
    value, content = _status(votable)
    assert value == "ERROR" and message in content
    error = next(info for info in votable.resources[0].infos if info.name == "Error")
    assert message in error.value
    assert not votable.resources[0].tables


@pytest.mark.usefixtures("catalogue")
def test_verbosity_chooses_the_columns(client):
    table = _votable(client.get(f"{CONE}?RA=150&DEC=2&SR=0.5&VERB=1")).get_first_table().to_table()
    assert table.colnames == ["pgc", "ra", "dec", "inclination", "inclination_err", "status", "_r"]
    assert list(table["pgc"]) == [10, 11, 13, 12]
    medium = _votable(client.get(f"{CONE}?RA=150&DEC=2&SR=0.5")).get_first_table().to_table()
    assert {"ensemble_inclination", "model_version", "n_votes"} < set(medium.colnames)
    assert "consensus_date" not in medium.colnames
    every = _votable(client.get(f"{CONE}?RA=150&DEC=2&SR=0.5&VERB=3")).get_first_table().to_table()
    assert len(every.colnames) == len(catalog_vo.catalog_formats.CATALOG_COLUMNS) + 1


@pytest.mark.usefixtures("catalogue")
def test_cone_across_ra_zero_and_an_empty_cone(client):
    votable = _votable(client.get(f"{CONE}?ra=359.5&dec=-40&sr=8.1"))  # parameter names in any case
    assert list(votable.get_first_table().to_table()["pgc"]) == [14]
    empty = _votable(client.get(f"{CONE}?RA=200&DEC=50&SR=1"))
    assert _status(empty)[0] == "OK"
    assert len(empty.get_first_table().to_table()) == 0


@pytest.mark.usefixtures("catalogue")
def test_more_galaxies_than_the_limit_is_an_overflow_with_the_nearest(client, monkeypatch):
    monkeypatch.setattr(catalog_vo, "MAX_RECORDS", 2)
    votable = _votable(client.get(f"{CONE}?RA=150&DEC=2&SR=1"))
    assert _status(votable)[0] == "OVERFLOW"
    assert list(votable.get_first_table().to_table()["pgc"]) == [10, 11]


@pytest.mark.usefixtures("catalogue")
def test_gold_galaxies_are_left_out_of_the_cone_except_for_staff(client, bob):
    Galaxy.objects.filter(pgc=10).update(is_gold=True, known_inclination=63.0)
    query = f"{CONE}?RA=150&DEC=2&SR=0.15&VERB=3"
    anonymous = _votable(client.get(query)).get_first_table().to_table()
    assert list(anonymous["pgc"]) == [11]
    client.force_login(bob)
    staff = _votable(client.get(query)).get_first_table().to_table()
    assert list(staff["pgc"]) == [10, 11]
    assert staff["axial_ratio"][0] == pytest.approx(0.5)
    assert staff["inclination"][0] == pytest.approx(62.5)


def test_vosi_reports_unavailable_when_the_database_is_down(client, monkeypatch, db):
    from django.db import DatabaseError, connection

    def broken_cursor(*args, **kwargs):
        raise DatabaseError("down")

    with monkeypatch.context() as patch:  # undone before the test database is torn down
        patch.setattr(connection, "cursor", broken_cursor)
        response = client.get("/api/catalog/vosi/availability/")
    assert response.status_code == 503
    assert vosi.parse_availability(io.BytesIO(response.content)).available is False
