"""The built documentation site, as a reader opens it: headless Chromium on a local static server.

The site is the ``docs_site`` fixture (``mkdocs build --strict`` into a temporary folder,
tests/conftest.py), served by Python's ``http.server`` on 127.0.0.1 and a free port. Three
pages are opened (home, a notebook, an API page); each must render its title and content,
with no console error, no uncaught exception, no failed request and no request that leaves
the local server (the site works offline).

Run: ``.venv/bin/python -m pytest -m browser tests/browser/test_docs_site.py``.
"""
from __future__ import annotations

import functools
import http.server
import threading

import pytest

pytestmark = pytest.mark.browser


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request on stderr otherwise
        pass


@pytest.fixture(scope="module")
def site_url(docs_site):
    assert docs_site.returncode == 0, f"mkdocs build --strict failed:\n{docs_site.log[-4000:]}"
    handler = functools.partial(_QuietHandler, directory=str(docs_site.dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _open(page, url: str, base: str) -> list[str]:
    """Load ``url`` until the network is idle; return every problem seen on the way."""
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("request", lambda r: None if r.url.startswith((base, "data:", "blob:"))
            else problems.append(f"request off the local server: {r.url}"))
    response = page.goto(url, wait_until="networkidle")
    assert response is not None and response.status == 200, f"{url}: HTTP {response and response.status}"
    return problems


def test_home_page(page, site_url):
    problems = _open(page, site_url + "/", site_url)
    assert page.title() == "snnlab"
    assert page.locator("article h1").first.inner_text().rstrip("¶ \n") == "snnlab"  # ¶: its permalink
    # the README's screenshot, its link rewritten into the site, is drawn
    img = page.locator("article img[src$='explorer.png']")
    assert img.count() == 1 and img.evaluate("e => e.complete && e.naturalWidth > 100")
    assert page.locator("nav a[href*='notebooks/01_retina_dog_gabor/']").count() >= 1
    assert problems == []


def test_notebook_page(page, site_url):
    problems = _open(page, site_url + "/notebooks/01_retina_dog_gabor/", site_url)
    assert "The retina: DoG and Gabor filters" in page.title()
    # a figure from the saved outputs, decoded and drawn
    figs = page.locator(".jp-OutputArea-output img[src^='data:image/png']")
    assert figs.count() >= 3
    assert figs.first.evaluate("e => e.complete && e.naturalWidth > 100 && e.getBoundingClientRect().height > 50")
    # the Markdown cells' math, drawn as MathML (no MathJax, no network)
    assert page.locator("article math").count() > 5
    assert page.locator("article math").first.evaluate("e => e.getBoundingClientRect().width > 0")
    assert problems == []


def test_api_page(page, site_url):
    problems = _open(page, site_url + "/api/retina/", site_url)
    assert page.title().startswith("snnlab.retina")
    sig = page.locator(".doc-signature", has_text="dog_kernel(").first
    assert sig.is_visible()
    assert "dog_kernel(size: int, sigma1: float, sigma2: float)" in " ".join(sig.inner_text().split())
    # its doctest, rendered as code
    assert page.locator("pre code", has_text=">>> k = dog_kernel(7, 1, 2)").count() == 1
    assert problems == []
