"""Property-based fuzzing (hypothesis) of the API, the website's forms and the catalog importer: no 5xx, and
refusals change nothing.

Requests go through the whole Django stack (middleware, URL routing, DRF) in process. The operations, their
query parameters and body fields come from the OpenAPI schema, so new endpoints are fuzzed without editing
this file; values are hostile: arbitrary Unicode, NUL, lone surrogates, digits of other scripts, deep
nesting, huge and non-finite numbers, broken bodies and content types. Every response must be below 500, and
every refused one (4xx) must leave the database as it was.

The suite runs a few hundred examples; `GIZ_FUZZ_EXAMPLES=10000` (with `-s` to see the tally) is the long
run reported in docs/BENCHMARKS.md. Examples are derandomized, so a run is reproducible.
"""

import json
import os
from collections import Counter
from functools import cache
from urllib.parse import quote, urlencode

import pytest
from django.apps import apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db.models import Count, Max
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from acquisition.standin import running_standin
from labeling.models import Galaxy
from tests.api_fixtures import (
    ensemble,  # noqa: F401
    fresh_ensemble,  # noqa: F401
    standards_grid,
    token_client,
)
from tests.factories import GalaxyFactory, galaxy_jpeg

pytestmark = pytest.mark.django_db

API_EXAMPLES = int(os.environ.get("GIZ_FUZZ_EXAMPLES", "300"))
CATALOG_EXAMPLES = max(20, API_EXAMPLES // 5)
FUZZ_SETTINGS = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Logging out would end the token's use for the rest of the run; it takes no input to fuzz.
SKIPPED_OPERATIONS = {("delete", "/api/auth/token/current/")}

# ------------------------------------------------------------------------------ hostile values

NASTY_STRINGS = [
    "",
    "\x00",
    "a\x00b",
    "\ud800",  # a lone surrogate: valid in JSON text, not encodable as UTF-8
    "\u00b2",  # isdigit() is true, int() fails
    "\u0661\u0662",  # Arabic-Indic digits: int() and float() read them
    "\U0001d7d8",  # mathematical double-struck zero
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-0",
    "9" * 30,
    str(2**63),
    str(-(2**63) - 1),
    "1_000",
    " 45 ",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "\u202e",
    "x" * 5000,
]
hostile_text = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(max_size=40))
hostile_numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**80),
    st.integers(min_value=-(2**80), max_value=-(2**63) + 2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 45, 90, 90.0000001, 44.999, 1e308, -1e308, 5e-324]),
)
json_scalars = st.one_of(st.none(), st.booleans(), hostile_numbers, hostile_text)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(hostile_text, children, max_size=4),
    max_leaves=12,
)
raw_bodies = st.one_of(
    st.integers(min_value=20, max_value=3000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=20, max_value=3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
    st.sampled_from(['{"a": 1e999}', '{"a": NaN}', '{"a": ' + "9" * 5000 + "}", "{", "[1,]", "\ufeff{}", "null"]),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)
path_ids = st.one_of(
    st.integers(min_value=0, max_value=10),
    st.sampled_from(["2557", "9" * 18, "9" * 19, str(2**63), "0", "-1", "1.5", "\u0661", "\u00b2", "%00", "a%2Fb"]),
)
files = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"GIF89a", b"\x89PNG\r\n\x1a\n", b"SIMPLE  =" + b" " * 80, b"\x1f\x8b\x08", b"BZh9"]),
    st.builds(galaxy_jpeg, size=st.just(48)),
)


@cache
def operations() -> list[dict]:
    """Every operation of the OpenAPI schema: method, path, query parameters, body fields and media types."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    components = schema["components"]["schemas"]
    found = []
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            if (method, path) in SKIPPED_OPERATIONS:
                continue
            body = operation.get("requestBody", {}).get("content", {})
            fields: set[str] = set()
            for content in body.values():
                name = content["schema"].get("$ref", "").rsplit("/", 1)[-1]
                fields |= set(components.get(name, {}).get("properties", {}))
            found.append(
                {
                    "method": method,
                    "path": path,
                    "query": sorted(p["name"] for p in operation.get("parameters", []) if p["in"] == "query"),
                    "fields": sorted(fields),
                    "media": sorted(body) or ["application/json"],
                }
            )
    return found


@st.composite
def api_requests(draw):
    operation = draw(st.sampled_from(operations()))
    path = operation["path"]
    while "{" in path:
        start, end = path.index("{"), path.index("}")
        path = path[:start] + quote(str(draw(path_ids)), safe="%") + path[end + 1 :]
    known = operation["query"] + ["page", "format", "ordering"]
    query = draw(st.dictionaries(st.sampled_from(known) | hostile_text, hostile_text, max_size=3))
    url = path + ("?" + urlencode(query, errors="surrogatepass") if query else "")
    request = {"method": operation["method"], "url": url, "who": draw(st.sampled_from(["anonymous", "alice", "bob"]))}
    if operation["method"] in ("get", "delete"):
        return request
    media = draw(st.sampled_from([*operation["media"], "application/json", "text/plain", "application/xml"]))
    if media == "multipart/form-data":
        form = draw(st.fixed_dictionaries({}, optional={name: hostile_text for name in operation["fields"]}))
        form = {k: v.replace("\ud800", "?") for k, v in form.items()}  # the test client encodes as UTF-8
        if "file" in operation["fields"]:
            form["file"] = draw(files)
        request.update(kind="multipart", data=form)
    elif media == "application/x-www-form-urlencoded":
        form = draw(st.fixed_dictionaries({}, optional={name: hostile_text for name in operation["fields"]}))
        request.update(kind="raw", content_type=media, body=urlencode(form, errors="surrogatepass"))
    else:
        body = draw(
            st.one_of(
                st.fixed_dictionaries({}, optional={name: json_values for name in operation["fields"]}).map(json.dumps),
                json_values.map(json.dumps),
                raw_bodies,
            )
        )
        request.update(kind="raw", content_type=media, body=body.encode("utf-8", "surrogatepass"))
    return request


# ------------------------------------------------------------------------------ the database's state


def database_state() -> dict:
    """Row count, highest id and latest update of every model the API can write (login attempts aside)."""
    state = {}
    models = [m for label in ("labeling", "inference", "acquisition") for m in apps.get_app_config(label).get_models()]
    models += [apps.get_model("authtoken", "Token"), apps.get_model("auth", "User")]
    for model in models:
        aggregates = {"n": Count("pk"), "top": Max("pk")}
        if any(f.name == "updated_at" for f in model._meta.fields):
            aggregates["changed"] = Max("updated_at")
        state[model._meta.label] = model.objects.aggregate(**aggregates)
    return state


@pytest.fixture
def fuzz_world(settings, bob):
    """Models, galaxies with images, standards and the SDSS stand-in (nothing leaves the machine)."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"anon": None, "user": None}}
    with running_standin() as standin:
        settings.GIZ_SDSS_CUTOUT_BASE_URL = standin.url
        settings.GIZ_SDSS_FRAMES_BASE_URL = f"{standin.url}/sas"
        settings.GIZ_SDSS_FETCH_FITS = False
        settings.GIZ_SDSS_MAX_RETRIES = 0
        standards_grid(degrees=[50, 60, 70])
        for pgc in (1, 2, 3):
            GalaxyFactory(with_image=True, pgc=pgc)
        GalaxyFactory(with_image=True, pgc=2557, name="NGC0224", d25_arcmin=177.8)
        yield


@pytest.mark.usefixtures("ensemble", "fuzz_world")
def test_the_api_never_answers_5xx_and_refusals_change_nothing(alice, bob):
    tally = Counter()
    clients = {"anonymous": Client(), "alice": Client(), "bob": Client()}
    for name, user in (("alice", alice), ("bob", bob)):
        clients[name].defaults["HTTP_AUTHORIZATION"] = token_client(user)._credentials["HTTP_AUTHORIZATION"]

    @settings(FUZZ_SETTINGS, max_examples=API_EXAMPLES)
    @given(request=api_requests())
    def run(request):
        client = clients[request["who"]]
        before = database_state()
        if request.get("kind") == "multipart":
            form = dict(request["data"])
            if "file" in form:
                form["file"] = SimpleUploadedFile("upload.bin", form["file"])
            response = client.post(request["url"], form)
        elif request.get("kind") == "raw":
            response = client.generic(
                request["method"].upper(), request["url"], request["body"], content_type=request["content_type"]
            )
        else:
            response = client.generic(request["method"].upper(), request["url"])
        tally[response.status_code // 100 * 100] += 1
        assert response.status_code < 500, (request, response.content[:500])
        if response.status_code >= 400:
            assert database_state() == before, (request, response.status_code, response.content[:300])

    run()
    print(f"\nAPI fuzz: {sum(tally.values())} requests; by status class {dict(sorted(tally.items()))}")
    assert tally[500] == 0
    assert tally[200] and tally[400]  # the run reached both sides of validation


# ------------------------------------------------------------------------------ the website's forms

VOTE_FORM_FIELDS = ["token", "galaxy", "inclination", "left_standard", "right_standard", "flag", "not_sure", "note"]


@st.composite
def website_requests(draw):
    """The labeling page's vote form, its feedback link and its reshuffle call, with hostile values."""
    kind = draw(st.sampled_from(["vote", "feedback", "reshuffle"]))
    if kind == "feedback":
        return {"kind": kind, "query": urlencode({"feedback": draw(hostile_text)}, errors="surrogatepass")}
    if kind == "reshuffle":
        degrees = draw(st.one_of(json_values.map(json.dumps), raw_bodies))
        return {"kind": kind, "body": ('{"token": TOKEN, "degrees": ' + degrees + "}").encode("utf-8", "surrogatepass")}
    form = draw(st.fixed_dictionaries({}, optional={name: hostile_text for name in VOTE_FORM_FIELDS}))
    # A real token unless the field is fuzzed, so the serializer, not the token lookup, meets the values.
    return {"kind": kind, "form": {k: v.replace("\ud800", "?") for k, v in form.items()}}


@pytest.mark.usefixtures("fuzz_world")
def test_the_website_forms_never_answer_5xx_and_refusals_change_nothing(alice):
    client = Client()
    client.force_login(alice)
    tally = Counter()

    @settings(FUZZ_SETTINGS, max_examples=max(50, API_EXAMPLES // 3))
    @given(request=website_requests())
    def run(request):
        page = client.get("/label/").context["page_data"]
        before = database_state()
        if request["kind"] == "feedback":
            response = client.get("/label/?" + request["query"])
        elif request["kind"] == "reshuffle":
            body = request["body"].replace(b"TOKEN", json.dumps(page["token"]).encode())
            response = client.post("/api/assignments/reshuffle/", body, content_type="application/json")
        else:
            response = client.post("/label/vote/", {"token": page["token"], **request["form"]})
        tally[response.status_code // 100 * 100] += 1
        assert response.status_code < 500, (request, response.content[:500])
        if response.status_code >= 400:
            assert database_state() == before, (request, response.status_code)

    run()
    print(f"\nWebsite fuzz: {sum(tally.values())} requests; by status class {dict(sorted(tally.items()))}")
    assert tally[400]


# ------------------------------------------------------------------------------ the catalog importer

CATALOG_COLUMNS = ["pgc", "name", "ra", "dec", "d25", "logd25", "pa", "b/a", "logr25", "al2000", "objname"]
cells = st.one_of(hostile_text, hostile_numbers.map(str), st.sampled_from(["1", "10.5", "45", "0.5", "2557"]))


@st.composite
def catalogs(draw) -> bytes:
    columns = draw(st.lists(st.sampled_from(CATALOG_COLUMNS), min_size=1, max_size=6, unique=True))
    if draw(st.booleans()):
        columns = ["pgc", "ra", "dec", *[c for c in columns if c not in ("pgc", "ra", "dec")]]
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    rows = draw(st.lists(st.lists(cells, min_size=len(columns), max_size=len(columns) + 1), max_size=8))
    text = "\n".join(delimiter.join(row) for row in [columns, *rows])
    encoding = draw(st.sampled_from(["utf-8", "utf-16", "latin-1"]))
    return text.encode(encoding, errors="replace")


def test_the_catalog_import_never_fails_and_refusals_change_nothing(bob):

    client = Client()
    client.force_login(bob)
    tally = Counter()

    @settings(FUZZ_SETTINGS, max_examples=CATALOG_EXAMPLES)
    @given(data=catalogs())
    def run(data):
        before = Galaxy.objects.count()
        upload = SimpleUploadedFile("fuzz.csv", data)
        response = client.post("/admin/acquisition/acquisitionjob/import/", {"file": upload})
        assert response.status_code == 200, response.content[:500]
        page = response.content.decode()
        refused = "Cannot read the catalog" in page or "Nothing was imported" in page
        tally["refused" if refused else "imported"] += 1
        if refused:
            assert Galaxy.objects.count() == before

    run()
    print(f"\nCatalog fuzz: {sum(tally.values())} files; {dict(tally)}")
    assert tally["imported"] and tally["refused"]
