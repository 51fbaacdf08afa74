"""The docs pages work offline and send a browser to the login; `/` and
`/api/v1/` say where to go."""
import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db
BROWSER = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def browser(superuser):
    client = Client()
    client.force_login(superuser)
    return client


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_an_anonymous_browser_is_sent_to_the_admin_login_and_back(path, superuser):
    client = Client()
    response = client.get(path, **BROWSER)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={path}"
    # logging in there brings the browser back to the docs page
    login = client.post(response["Location"], {"username": "root", "password": "s3cret-pass!"})
    assert login.status_code == 302 and login["Location"] == path
    assert client.get(path, **BROWSER).status_code == 200


def test_api_clients_keep_the_401(client_for):
    anonymous = client_for(None)
    for path in ("/api/schema/", "/api/docs/", "/api/redoc/"):
        assert anonymous.get(path).status_code == 401, path
    assert Client().get("/api/schema/", **BROWSER).status_code == 401  # the schema is data, not a page


@pytest.mark.parametrize("path, assets", [
    ("/api/docs/", ["swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui.css",
                    "swagger-ui-dist/swagger-ui-standalone-preset.js", "swagger-ui-dist/favicon-32x32.png"]),
    ("/api/redoc/", ["redoc/bundles/redoc.standalone.js"]),
])
def test_docs_pages_load_their_assets_from_the_project(browser, path, assets):
    html = browser.get(path, **BROWSER).content.decode()
    assert "cdn" not in html.lower() and "@latest" not in html
    for asset in assets:
        assert f"/static/drf_spectacular_sidecar/{asset}" in html
        assert finders.find(f"drf_spectacular_sidecar/{asset}"), asset  # shipped, served as a static file
    external = [url for url in re.findall(r'(?:src|href)="(https?://[^"]+)"', html)]
    assert external == []


def test_docs_with_a_bearer_token(admin_api):
    assert admin_api.get("/api/docs/").status_code == 200


def test_landing_page_links_admin_docs_and_health():
    response = Client().get("/")
    assert response.status_code == 200
    html = response.content.decode()
    for link in ('href="/admin/"', 'href="/api/docs/"', 'href="/api/redoc/"', 'href="/health"', 'href="/api/v1/jobs"'):
        assert link in html, link
    assert "URLconf" not in html  # not Django's debug 404


def test_api_index_lists_the_facades_roots(admin_api, client_for):
    response = admin_api.get("/api/v1/")
    assert response.status_code == 200
    endpoints = response.json()["endpoints"]
    assert endpoints["jobs"] == "http://testserver/api/v1/jobs"
    assert endpoints["executions"] == "http://testserver/api/v1/executions"
    assert {"cron_jobs", "workflows", "vision_cron_jobs", "vision_batches", "predictions", "docs"} <= set(endpoints)
    for url in endpoints.values():  # every one of them is a real route
        assert admin_api.get(url.removeprefix("http://testserver")).status_code != 404, url
    assert client_for(None).get("/api/v1/").status_code == 401
    assert admin_api.get("/api/v1").status_code == 404  # seed paths are unchanged: no new redirect
