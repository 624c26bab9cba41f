"""MkDocs hooks of the documentation site (mkdocs.yml, ``hooks:``).

- Brings in the pages that live outside ``docs/``: the README (home page), the measured
  results (``benchmarks/RESULTS*.md``) and the executed notebooks, rewriting the README's and
  the results' repository links to their pages in the site.
- Keeps the site readable offline: notebook math (``$...$``) is rendered to MathML at build
  time (latex2mathml; browsers draw MathML natively), the scripts nbconvert would load from
  CDNs (MathJax, the widget manager) are left out, and the Sphinx roles of the docstrings
  (``:func:`x```, ``:math:`x```) become code or MathML.
- Fails the strict build (a logged warning) when a built page still loads something from the
  network.
"""
from __future__ import annotations

import html
import logging
import re
from pathlib import Path

from latex2mathml.converter import convert as _tex_to_mathml
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File
from nbconvert.filters.markdown_mistune import IPythonRenderer

log = logging.getLogger("mkdocs.hooks.snnlab")

REPO = Path(__file__).resolve().parents[1]

#: repository file -> page of the site (the README's and results' links are rewritten to these)
PAGES = {
    "README.md": "index.md",
    "benchmarks/RESULTS.md": "results.md",
    "benchmarks/RESULTS_kulkarni2018.md": "results_kulkarni2018.md",
}

MD_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
# A resource the browser would fetch from the network when the page is opened: an element
# with an external src/href, or an inline script that fetches or imports an external URL.
EXTERNAL_RESOURCE = re.compile(r"<(?:script|img|iframe|link|audio|video|source)\b[^>]*\b(?:src|href)=[\"']?(?:https?:)?//", re.I)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.I | re.S)
URL = re.compile(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}/")
ROLE = re.compile(r":(math|func|class|meth|mod|attr|data|exc|obj|ref):<code>(.*?)</code>", re.S)


def _mathml(tex: str, display: bool) -> str:
    """MathML of TeX ``tex``; a formula latex2mathml cannot read stays visible as code (and warns)."""
    try:
        return _tex_to_mathml(tex, display="block" if display else "inline")
    except Exception as err:  # latex2mathml raises its own exception types per construct
        log.warning("docs: cannot render the formula %r as MathML (%s)", tex, err)
        return f"<code>{html.escape(tex)}</code>"


# nbconvert's Markdown renderer passes math through for MathJax; render it here instead
# (notebook Markdown cells and text/markdown outputs alike).
IPythonRenderer.inline_math = lambda self, body: _mathml(body, display=False)
IPythonRenderer.block_math = lambda self, body: _mathml(body, display=True)
IPythonRenderer.latex_environment = lambda self, name, body: _mathml(
    f"\\begin{{{name}}}{body}\\end{{{name}}}", display=True)


def _site_markdown(text: str, repo_path: str) -> str:
    """``text`` of repository file ``repo_path`` with its links pointing into the site."""
    base = (REPO / repo_path).parent

    def link(m):
        target = m.group(2)
        if re.match(r"[a-z]+:|#|/", target):
            return m.group(0)
        path, _, anchor = target.partition("#")
        rel = (base / path).resolve().relative_to(REPO).as_posix() if (base / path).exists() else None
        if rel in PAGES:
            page = PAGES[rel]
        elif rel is not None and rel.startswith("docs/"):
            page = rel[len("docs/"):]
        else:
            return m.group(0)  # left as written: the strict build reports it if it does not resolve
        return m.group(1) + page + ("#" + anchor if anchor else "") + m.group(3)

    return MD_LINK.sub(link, text)


@event_priority(100)  # before mkdocs-jupyter's on_files, which must see the notebooks
def on_files(files, config):
    for repo_path, page in PAGES.items():
        content = _site_markdown((REPO / repo_path).read_text(encoding="utf-8"), repo_path)
        files.append(File.generated(config, page, content=content))
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        # a real file with the repository as its source folder: mkdocs-jupyter's wrapper
        # finds a notebook by src_dir/src_uri (a generated file has no src_dir)
        files.append(File(f"notebooks/{nb.name}", src_dir=str(REPO), dest_dir=config.site_dir,
                          use_directory_urls=config.use_directory_urls))
    return files


def _role(m):
    role, text = m.group(1), m.group(2)
    if role == "math":
        return _mathml(html.unescape(text), display=False)
    name = text[1:].rsplit(".", 1)[-1] if text.startswith("~") else text  # Sphinx: ~ shows the last part
    return f"<code>{name}</code>"


def _fetches(attrs: str, body: str) -> bool:
    """Whether a ``<script attrs>body</script>`` loads code from the network (or, ``src=""``,
    the page itself as a script)."""
    if re.search(r"\bsrc=(?:\"\"|''|[\"']?(?:https?:)?//)", attrs, re.I):
        return True
    return "json" not in attrs.lower() and bool(URL.search(body))


def _offline_script(m):
    # MathJax's configuration goes with MathJax (not loaded: math is MathML already)
    drop = _fetches(m.group(1), m.group(2)) or "x-mathjax-config" in m.group(1).lower()
    return "" if drop else m.group(0)


def on_page_content(content, page, config, files):
    if page.title:  # a notebook's title with math ("... against $T$"): the nav shows plain text
        page.title = re.sub(r"\$([^$]+)\$", r"\1", page.title)
    if page.file.src_uri.endswith(".ipynb"):
        # nbconvert's template adds MathJax (src="" here, no URL being configured), the widget
        # manager (notebooks with saved widget state) and Mermaid, all from CDNs; the static
        # page needs none of them (saved widget views then show nothing, as on GitHub)
        content = SCRIPT.sub(_offline_script, content)
    return ROLE.sub(_role, content)


def on_post_page(output, page, config):
    found = EXTERNAL_RESOURCE.search(output)
    found = found.group(0) if found else next(
        (m.group(0) for m in SCRIPT.finditer(output) if _fetches(m.group(1), m.group(2))), None)
    if found:
        log.warning("docs: %s loads a resource from the network: %s", page.file.src_uri, found[:300])
    return output
