"""How the controller serves the dashboard's built files (no browser, no root).

The routes are mounted on a bare app with the API's error handlers, so these
checks need neither a controller nor a network: the page at ``/``, assets
under ``/ui/``, caching, gzip, the security headers, and refusals that keep
to the API's ``{"error", "detail"}`` shape.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ztos import web
from ztos.api import errors
from ztos.api.routes import web as web_routes


@pytest.fixture
def client() -> TestClient:
    if not web.is_built():
        pytest.skip("the dashboard is not built: run make web")
    app = FastAPI()
    errors.install(app)
    app.include_router(web_routes.router)
    return TestClient(app)


def built_asset(suffix: str) -> str:
    found = sorted((web.STATIC_DIR / "assets").glob(f"*{suffix}"))
    assert found, f"no built *{suffix} in {web.STATIC_DIR / 'assets'}"
    return found[0].name


def test_the_page_is_served_at_the_root_and_under_ui(client: TestClient) -> None:
    for path in ("/", "/ui", "/ui/", "/ui/index.html"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-cache"
        assert '<div id="app">' in response.text
    csp = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert client.get("/").headers["referrer-policy"] == "no-referrer"


def test_the_page_loads_nothing_from_elsewhere(client: TestClient) -> None:
    page = client.get("/").text
    assert "http://" not in page and "https://" not in page
    assert "/ui/assets/" in page
    script = client.get(f"/ui/assets/{built_asset('.js')}").text
    assert "cdn." not in script and "unpkg.com" not in script and "jsdelivr" not in script


def test_hashed_assets_are_cached_for_ever_and_compressed(client: TestClient) -> None:
    name = built_asset(".js")
    plain = client.get(f"/ui/assets/{name}", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert plain.headers["content-type"] == "text/javascript; charset=utf-8"
    assert plain.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert "content-encoding" not in plain.headers
    zipped = client.get(f"/ui/assets/{name}", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == plain.content  # httpx decodes it
    assert int(zipped.headers["content-length"]) < len(plain.content) / 2
    assert client.head(f"/ui/assets/{name}").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/ui/nope.js",
        "/ui/assets/",
        "/ui/../__init__.py",
        "/ui/assets/../../__init__.py",
        "/ui/%2e%2e/__init__.py",
        "/ui/.hidden",
    ],
)
def test_missing_or_escaping_paths_are_refused(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_resolve_stays_inside_the_static_directory(tmp_path: Path) -> None:
    (tmp_path / "static" / "assets").mkdir(parents=True)
    (tmp_path / "static" / "assets" / "a.js").write_text("x")
    (tmp_path / "secret").write_text("s")
    (tmp_path / "static" / "assets" / "link.js").symlink_to(tmp_path / "secret")
    root = tmp_path / "static"
    assert web.resolve("assets/a.js", root) == (root / "assets" / "a.js").resolve()
    for bad in ("../secret", "assets/link.js", "assets", "", "assets\\a.js", "/etc/passwd"):
        assert web.resolve(bad, root) is None, bad


def test_an_unbuilt_installation_says_how_to_build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(web, "STATIC_DIR", tmp_path)
    app = FastAPI()
    errors.install(app)
    app.include_router(web_routes.router)
    response = TestClient(app).get("/")
    assert response.status_code == 503
    assert "make web" in response.json()["detail"]
