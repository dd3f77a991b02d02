"""The catalogue as a Virtual Observatory service: IVOA Simple Cone Search 1.03 and VOSI capabilities/availability.

TOPCAT, Aladin and pyvo speak these directly. The answers are VOTable/XML, not the API's JSON: a cone search
error is a VOTable carrying the message (INFO name="Error" as SCS 1.03 asks, and QUERY_STATUS=ERROR as DALI
and pyvo read it), sent with HTTP 200 because SCS clients read the message from the document.
"""

import dataclasses
import io
import math
from xml.sax.saxutils import escape

from astropy.io.votable.tree import Info, Resource, VOTableFile
from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_GET

from inference.catalog_selectors import cone_search
from labeling import catalog_formats

MAX_SR_DEG = 10.0
MAX_RECORDS = 50000
VOTABLE_TYPE = "application/x-votable+xml"

# SCS 1.03 finds the identifier and position by these UCD1 names.
_SCS_UCDS = {"pgc": "ID_MAIN", "ra": "POS_EQ_RA_MAIN", "dec": "POS_EQ_DEC_MAIN"}
_VERB1 = ("pgc", "ra", "dec", "inclination", "inclination_err", "status")
# SCS's "medium" verbosity, the default: what a cone search is for; VERB=3 adds every catalogue column.
_VERB2 = (
    *_VERB1,
    "name",
    "n_votes",
    "face_on",
    "rejected",
    "ensemble_inclination",
    "ensemble_spread",
    "model_version",
    "inclination_axial_ratio",
)
_DISTANCE = catalog_formats.CatalogColumn(
    "_r", "f8", "deg", "pos.angDistance", "Distance from the cone centre", nullable=False
)


def _columns(verb: int) -> list[catalog_formats.CatalogColumn]:
    wanted = {1: _VERB1, 2: _VERB2}.get(verb)
    columns = [
        dataclasses.replace(c, ucd=_SCS_UCDS.get(c.name, c.ucd))
        for c in catalog_formats.CATALOG_COLUMNS
        if wanted is None or c.name in wanted
    ]
    return [*columns, _DISTANCE]


def _votable_response(body: bytes) -> HttpResponse:
    return HttpResponse(body, content_type=VOTABLE_TYPE)


def scs_error(message: str) -> HttpResponse:
    """The error VOTable of SCS 1.03 (and DALI's QUERY_STATUS), never a 500."""
    votable = VOTableFile()
    resource = Resource(type="results")
    votable.resources.append(resource)
    resource.infos.append(Info(ID="Error", name="Error", value=message))
    status = Info(name="QUERY_STATUS", value="ERROR")
    status.content = message
    resource.infos.append(status)
    out = io.BytesIO()
    votable.to_xml(out)
    return _votable_response(out.getvalue())


class _BadParameter(ValueError):
    pass


def _number(params: dict, name: str, low: float, high: float, *, low_open: bool = False) -> float:
    raw = params.get(name)
    if raw is None or raw.strip() == "":
        raise _BadParameter(f"{name} is required (decimal degrees).")
    try:
        value = float(raw)
    except ValueError:
        raise _BadParameter(f"{name}={raw[:40]!r} is not a number (decimal degrees).") from None
    if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise _BadParameter(f"{name}={value:g} is out of range: it must be in {interval} degrees.")
    return value


@require_GET
def cone_search_view(request) -> HttpResponse:
    """IVOA Simple Cone Search: ?RA=&DEC=&SR= in decimal degrees (ICRS), VERB=1|2|3; a VOTable, nearest first."""
    params = {key.upper(): value for key, value in request.GET.items()}
    try:
        ra = _number(params, "RA", 0.0, 360.0)
        dec = _number(params, "DEC", -90.0, 90.0)
        radius = _number(params, "SR", 0.0, MAX_SR_DEG)
        verb = params.get("VERB", "2").strip() or "2"
        if verb not in ("1", "2", "3"):
            raise _BadParameter(f"VERB={verb[:10]!r} must be 1, 2 or 3.")
    except _BadParameter as error:
        return scs_error(str(error))
    ra = ra % 360.0
    # A gold galaxy's b/a, consensus and predictions give its answer away: only staff see it (as in the export).
    chunk, distances, overflow = cone_search(
        ra=ra, dec=dec, radius=radius, limit=MAX_RECORDS, without_gold=not request.user.is_staff
    )
    columns = _columns(int(verb))
    chunk = {c.name: chunk[c.name] for c in columns if c.name != "_r"} | {"_r": distances}
    meta = {"description": f"Galaxy Inclination Zoo galaxies within {radius:g} deg of RA={ra:g}, Dec={dec:g} (ICRS)"}
    body = catalog_formats.votable_document(chunk, columns=columns, meta=meta)
    status = "OVERFLOW" if overflow else "OK"
    note = f"More than {MAX_RECORDS} galaxies match; the nearest {MAX_RECORDS} are returned." if overflow else ""
    info = f'<INFO name="QUERY_STATUS" value="{status}">{escape(note)}</INFO>\n'
    # The status goes first in the RESOURCE, where DALI clients look for it.
    body = body.replace(b'<RESOURCE type="results">\n', b'<RESOURCE type="results">\n  ' + info.encode(), 1)
    return _votable_response(body)


def _absolute(request, name: str) -> str:
    return escape(request.build_absolute_uri(reverse(name)))


@require_GET
def vosi_capabilities(request) -> HttpResponse:
    """VOSI capabilities: the cone search and the two VOSI endpoints, with their limits."""
    cone = _absolute(request, "api:catalog-cone")
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0"
    xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"
    xmlns:cs="http://www.ivoa.net/xml/ConeSearch/v1.0">
  <capability standardID="ivo://ivoa.net/std/ConeSearch" xsi:type="cs:ConeSearch">
    <interface xsi:type="vs:ParamHTTP" role="std">
      <accessURL use="base">{cone}?</accessURL>
      <queryType>GET</queryType>
      <resultType>{VOTABLE_TYPE}</resultType>
    </interface>
    <maxSR>{MAX_SR_DEG:g}</maxSR>
    <maxRecords>{MAX_RECORDS}</maxRecords>
    <verbosity>true</verbosity>
    <testQuery><ra>10.68</ra><dec>41.27</dec><sr>1</sr></testQuery>
  </capability>
  <capability standardID="ivo://ivoa.net/std/VOSI#capabilities">
    <interface xsi:type="vs:ParamHTTP">
      <accessURL use="full">{_absolute(request, "api:catalog-vosi-capabilities")}</accessURL>
    </interface>
  </capability>
  <capability standardID="ivo://ivoa.net/std/VOSI#availability">
    <interface xsi:type="vs:ParamHTTP">
      <accessURL use="full">{_absolute(request, "api:catalog-vosi-availability")}</accessURL>
    </interface>
  </capability>
</vosi:capabilities>
"""
    return HttpResponse(body, content_type="text/xml; charset=utf-8")


@require_GET
def vosi_availability(request) -> HttpResponse:
    """VOSI availability: up when the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        available, note = True, "The catalogue database answers."
    except DatabaseError:
        available, note = False, "The catalogue database does not answer."
    body = f"""<?xml version="1.0" encoding="UTF-8"?>
<avl:availability xmlns:avl="http://www.ivoa.net/xml/VOSIAvailability/v1.0">
  <avl:available>{"true" if available else "false"}</avl:available>
  <avl:note>{escape(note)}</avl:note>
</avl:availability>
"""
    return HttpResponse(body, content_type="text/xml; charset=utf-8", status=200 if available else 503)
