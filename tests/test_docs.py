"""The documentation site: ``mkdocs build --strict`` (warnings are errors) and what it must hold.

The build itself is the ``docs_site`` fixture (tests/conftest.py), shared with the browser
test of the site (tests/browser/test_docs_site.py).
"""
from __future__ import annotations

import base64
import importlib.util
import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
#: modules with their own API page: every public module of snnlab but the command line
API_MODULES = ["retina", "coding", "layers", "competition", "learning", "learners", "training", "neurons", "svm", "metrics",
               "data", "images", "io", "runs", "integrity", "pretrained", "viz", "widgets", "analysis", "models",
               "models.mozafari2019",
               "models.kheradpisheh2018", "models.kulkarni2018"]
EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//"
                      r"|fonts\.googleapis|unpkg\.com|cdnjs\.cloudflare|cdn\.jsdelivr", re.I)


def _html_pages(site: Path):
    return sorted(site.rglob("*.html"))


def test_site_builds_strict(docs_site):
    """No warning at all (strict), and fast: the notebooks are rendered, never executed."""
    assert docs_site.returncode == 0, f"mkdocs build --strict failed:\n{docs_site.log[-6000:]}"
    print(f"\nmkdocs build --strict: {docs_site.seconds:.1f} s")
    assert docs_site.seconds < 300, f"the build took {docs_site.seconds:.0f} s: are notebooks being executed?"


def test_every_page_is_built(docs_site):
    site = docs_site.dir
    expected = ["index.html", "results/index.html", "results_kulkarni2018/index.html"]
    expected += [f"notebooks/{nb}/index.html" for nb in NOTEBOOKS]
    expected += [f"api/{m}/index.html" for m in API_MODULES]
    missing = [p for p in expected if not (site / p).is_file()]
    assert not missing, f"pages missing from the site: {missing}"
    assert len(NOTEBOOKS) >= 13


def test_every_public_module_has_an_api_page():
    """A new public module without a page in docs/api (and the nav) fails here."""
    public = []
    for path in (REPO / "snnlab").rglob("*.py"):
        parts = path.relative_to(REPO / "snnlab").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts and not any(p.startswith("_") for p in parts) and parts != ("cli",):
            public.append(".".join(parts))  # the command line (cli) is documented in the README
    public.sort()
    assert sorted(API_MODULES) == public
    nav = (REPO / "mkdocs.yml").read_text()
    for m in API_MODULES:
        assert (REPO / "docs" / "api" / f"{m}.md").read_text().strip() == f"::: snnlab.{m}"
        assert f"api/{m}.md" in nav


def test_notebooks_are_rendered_from_their_saved_outputs(docs_site):
    """The first saved PNG of notebook 01 is in its page byte for byte; math is MathML."""
    nb = json.loads((REPO / "notebooks" / "01_retina_dog_gabor.ipynb").read_text())
    png = next(o["data"]["image/png"] for c in nb["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    png = "".join(png).strip()
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    html = (docs_site.dir / "notebooks" / "01_retina_dog_gabor" / "index.html").read_text()
    assert png in html
    assert "<math" in html and "$$" not in html and "x-mathjax-config" not in html


def test_api_page_has_signatures_and_examples(docs_site):
    html = (docs_site.dir / "api" / "retina" / "index.html").read_text()
    text = re.sub(r"<[^>]+>", "", html)
    assert "dog_kernel(size: int, sigma1: float, sigma2: float)" in text
    # the doctests render as code blocks (not as nested quotes of ">>>" lines)
    assert "&gt;&gt;&gt;" in html and "<blockquote>" not in html
    # Sphinx roles of the docstrings are rendered (code, MathML), on every API page
    for m in API_MODULES:
        api = re.sub(r"<[^>]+>", "", (docs_site.dir / "api" / m / "index.html").read_text())
        left = re.search(r":(?:func|class|meth|mod|attr|math|data|exc):", api)
        assert left is None, f"api/{m}: {api[left.start() - 60:left.end() + 60]!r}"


def test_site_is_offline_and_public(docs_site):
    """No page loads anything from the network, nor mentions files that are not published."""
    pages = _html_pages(docs_site.dir)
    assert len(pages) > 30
    for page in pages:
        html = page.read_text(encoding="utf-8")
        found = EXTERNAL.search(html)
        assert found is None, f"{page.relative_to(docs_site.dir)} loads {found.group(0)!r}"
        for private in ("../shared", "design.md"):
            assert private not in html, f"{page.relative_to(docs_site.dir)} mentions {private}"
    index = (docs_site.dir / "search" / "search_index.json").read_text()
    assert "design.md" not in index and "../shared" not in index


def _hooks():
    pytest.importorskip("mkdocs", reason="docs tools not installed")
    pytest.importorskip("latex2mathml", reason="docs tools not installed")
    spec = importlib.util.spec_from_file_location("snnlab_docs_hooks", REPO / "docs" / "hooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _page():
    """The two attributes of an mkdocs Page that the hooks read."""
    return SimpleNamespace(title="10 · How many time steps? Accuracy and cost against $T$",
                           file=SimpleNamespace(src_uri="notebooks/x.ipynb"))


@pytest.mark.parametrize("html, warns", [
    ('<script src="https://cdn.example.org/x.js"></script>', True),
    ("<script>var s = 'https://unpkg.com/@jupyter-widgets/html-manager'; load(s)</script>", True),
    ('<script src=""> </script>', True),
    ('<link rel="stylesheet" href="//fonts.example.com/a.css">', True),
    ('<script src="../assets/x.js"></script><a href="https://example.org">a link is fine</a>', False),
])
def test_hook_guard_fails_the_build_on_network_references(html, warns, caplog):
    """The last check of every page: a warning (an error in strict mode) names the page."""
    hooks = _hooks()
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.snnlab"):
        assert hooks.on_post_page(html, _page(), None) == html
    assert bool(caplog.records) is warns
    if warns:
        assert "notebooks/x.ipynb" in caplog.text


def test_hook_removes_cdn_scripts():
    hooks = _hooks()
    page = ('<script src=""> </script><script>x.src = "https://unpkg.com/a.js"</script>'
            '<script type="application/vnd.jupyter.widget-state+json">{"u": "https://x.org/a"}</script>'
            '<script type="text/x-mathjax-config">MathJax.Hub.Config({})</script>'
            "<p>hyper-parameters. Staged.</p>")
    pg = _page()
    out = hooks.on_page_content(page, pg, None, None)
    assert "unpkg" not in out and 'src=""' not in out and "MathJax" not in out
    assert "widget-state+json" in out  # data, not code: kept
    assert out.endswith("<p>hyper-parameters. Staged.</p>")
    assert pg.title.endswith("against T")  # the nav shows titles as plain text


def test_site_markdown_points_links_into_the_site():
    hooks = _hooks()
    md = "see [results](benchmarks/RESULTS.md#quick) and ![x](docs/img/explorer.png) and [w](https://x.org)"
    assert hooks._site_markdown(md, "README.md") == (
        "see [results](results.md#quick) and ![x](img/explorer.png) and [w](https://x.org)")


def test_sources_compile_without_warnings():
    """A docstring with ``\\theta`` outside a raw string holds a tab, not the formula: every
    Python file compiles with its warnings (invalid escapes) turned into errors."""
    import warnings

    bad = []
    for path in sorted(p for d in ("snnlab", "benchmarks", "tests", "docs") for p in (REPO / d).rglob("*.py")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                compile(path.read_text(encoding="utf-8"), str(path), "exec")
            except SyntaxError as err:
                bad.append(f"{path.relative_to(REPO)}:{err.lineno}: {err.msg}")
    assert not bad, bad
