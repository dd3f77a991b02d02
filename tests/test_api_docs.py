"""The API's documentation pages work offline: their assets are served by the site itself."""

import pytest


@pytest.mark.parametrize("url, asset", [("/api/docs/", "swagger-ui-dist"), ("/api/redoc/", "redoc")])
def test_docs_pages_use_local_assets(client, db, url, asset):
    html = client.get(url).content.decode()
    assert f"/static/drf_spectacular_sidecar/{asset}" in html
    assert "cdn.jsdelivr.net" not in html


def test_schema_is_served(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    assert response.json()["info"]["title"] == "Galaxy Inclination Zoo API"
