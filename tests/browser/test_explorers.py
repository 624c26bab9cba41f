"""The notebooks' widget explorers, used as a reader would: in JupyterLab, in headless Chromium.

For every notebook with an ``interact(...)`` explorer: open it, run all cells in quick mode,
then move every slider one step with the keyboard (pick another option of every dropdown,
toggle every checkbox) and check that the explorer's figure is redrawn and that no error or
traceback appears anywhere in the notebook. The draw-a-digit notebook (13) is drawn on: a
stroke with the mouse on its canvas, after which the network's decision must appear. One screenshot per notebook goes to
``tests/browser/screenshots/`` (git-ignored). Notebooks are closed without saving and must
be byte-identical on disk afterwards.

Run: ``.venv/bin/python -m pytest -m browser tests/browser`` (see README, "Working in JupyterLab").
"""
from __future__ import annotations

import contextlib
import json
import re
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
KERNEL_START_S = 180
RUN_ALL_S = 300
REDRAW_S = 60
EXPLORER_CALL = re.compile(r"(?<![\w.])(?:\w+\.)?interact(?:ive|_manual)?\s*\(")


def explorer_notebooks() -> list[tuple[Path, int]]:
    """Notebooks whose code cells call ``interact(...)``, with the number of such cells."""
    found = []
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        try:
            cells = json.loads(nb.read_text(encoding="utf-8"))["cells"]
        except (OSError, ValueError, KeyError):
            continue  # a notebook being written right now: nbval reports it
        n = sum(1 for c in cells if c.get("cell_type") == "code"
                and EXPLORER_CALL.search("".join(c.get("source", ""))))
        if n:
            found.append((nb, n))
    return found


NOTEBOOKS = explorer_notebooks()


def test_explorer_notebooks_are_found():
    """The six explorer notebooks at least (a rename would otherwise silently drop them)."""
    names = {nb.name[:2] for nb, _ in NOTEBOOKS}
    assert {"01", "02", "04", "05", "06", "09"} <= names, \
        f"explorer notebooks found: {sorted(nb.name for nb, _ in NOTEBOOKS)}"


# --- JavaScript run in the page (window.jupyterapp: --LabApp.expose_app_in_browser) -----------

JS_NOTEBOOK_READY = """(path) => {
  const app = window.jupyterapp;
  const w = app && app.shell.currentWidget;
  if (!w || !w.context || w.context.path !== path || !w.sessionContext) return false;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""

JS_RUN_ALL = """() => {
  window.__snnlabRunAll = null;
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    (ok) => { window.__snnlabRunAll = {ok: ok}; },
    (e) => { window.__snnlabRunAll = {ok: false, error: String(e)}; });
}"""

JS_IDLE_AND_DONE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  if (!k || k.status !== 'idle') return false;
  return !Array.from(w.node.querySelectorAll('.jp-InputArea-prompt'))
    .some((p) => p.textContent.includes('*'));
}"""

# Errors anywhere in the notebook: error outputs in the cell models, and rendered stderr /
# error text (cell outputs and widget Output areas alike) that carries a traceback.
JS_ERRORS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const found = [];
  const cells = w.content.model.cells;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (let j = 0; j < c.outputs.length; j++) {
      const o = c.outputs.get(j).toJSON();
      if (o.output_type === 'error') found.push(`cell ${i}: ${o.ename}: ${o.evalue}`);
    }
  }
  const sel = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
            + '[data-mime-type="application/vnd.jupyter.error"]';
  for (const e of w.node.querySelectorAll(sel)) {
    const t = e.innerText || '';
    if (/Traceback|Error\\b|Exception/.test(t)) found.push(t.slice(-1500));
  }
  return found;
}"""

JS_FIGURE = """(box) => {
  const out = box.querySelector('.widget-output');
  if (!out) return '';
  const parts = [];
  for (const img of out.querySelectorAll('img')) parts.push(img.src);
  for (const cv of out.querySelectorAll('canvas')) { try { parts.push(cv.toDataURL()); } catch (e) {} }
  for (const svg of out.querySelectorAll('svg')) parts.push(svg.outerHTML);
  return parts.join('|');
}"""

JS_CLOSE_WITHOUT_SAVING = """async () => {
  const w = window.jupyterapp.shell.currentWidget;
  if (!w || !w.context) return;
  try { await w.sessionContext.shutdown(); } catch (e) {}
  w.context.model.dirty = false;
  w.dispose();
}"""


def _wait_redraw(page, box, before: str, what: str) -> None:
    """Wait until the explorer's figure differs from ``before`` (or an error shows up in it)."""
    try:
        page.wait_for_function(
            f"""([box, before]) => {{
                const err = box.querySelector('[data-mime-type="application/vnd.jupyter.stderr"]');
                if (err && /Traceback|Error\\b|Exception/.test(err.innerText || '')) return true;
                const f = ({JS_FIGURE})(box);
                return f !== '' && f !== before;
            }}""", arg=[box.element_handle(), before], timeout=REDRAW_S * 1000, polling=200)
        page.wait_for_function(JS_IDLE_AND_DONE, timeout=REDRAW_S * 1000, polling=200)
    except Exception as e:
        errors = page.evaluate(JS_ERRORS)
        raise AssertionError(f"{what}: the figure was not redrawn within {REDRAW_S} s"
                             + ("; errors in the notebook:\n" + "\n".join(errors) if errors else "")) from e
    errors = page.evaluate(JS_ERRORS)
    assert not errors, f"{what}: error output in the notebook:\n" + "\n".join(errors)
    assert box.evaluate(JS_FIGURE) != before, f"{what}: the figure was not redrawn"


def _exercise_slider(page, box, slider, label: str) -> str:
    handle = slider.locator(".noUi-handle").first
    readout = slider.locator(".widget-readout")
    old = readout.inner_text().strip()
    before = box.evaluate(JS_FIGURE)
    handle.focus()
    page.keyboard.press("ArrowRight")
    moved = "([el, old]) => el.innerText.trim() !== old"
    try:  # one step right; at the maximum, one step left
        page.wait_for_function(moved, arg=[readout.element_handle(), old], timeout=5000)
    except Exception:
        page.keyboard.press("ArrowLeft")
        try:
            page.wait_for_function(moved, arg=[readout.element_handle(), old], timeout=10_000)
        except Exception:
            pass
    new = readout.inner_text().strip()
    assert new != old, f"{label}: the slider did not move with the keyboard (still {old})"
    _wait_redraw(page, box, before, f"{label} {old} -> {new}")
    return f"{label}: {old} -> {new}"


def _exercise_dropdown(page, box, dropdown, label: str) -> str:
    select = dropdown.locator("select")
    options = select.locator("option").all_inner_texts()
    old = select.evaluate("(s) => s.options[s.selectedIndex] ? s.options[s.selectedIndex].text : ''")
    others = [o for o in options if o != old]
    assert others, f"{label}: a dropdown with a single option"
    before = box.evaluate(JS_FIGURE)
    select.select_option(label=others[0])
    _wait_redraw(page, box, before, f"{label} {old!r} -> {others[0]!r}")
    return f"{label}: {old!r} -> {others[0]!r}"


def _exercise_checkbox(page, box, checkbox, label: str) -> str:
    tick = checkbox.locator("input[type=checkbox]")
    old = tick.is_checked()
    before = box.evaluate(JS_FIGURE)
    tick.focus()
    page.keyboard.press("Space")
    assert tick.is_checked() != old, f"{label}: the checkbox did not toggle with the keyboard"
    _wait_redraw(page, box, before, f"{label} {old} -> {not old}")
    return f"{label}: {old} -> {not old}"


@contextlib.contextmanager
def _notebook_session(page, notebook: Path, screenshot_dir: Path):
    """Around one notebook's browser session: a ``-FAILED`` screenshot on error; then close the
    notebook without saving and check that the file on disk was not modified."""
    rel = notebook.relative_to(REPO).as_posix()
    on_disk = notebook.read_bytes()
    try:
        yield
    except Exception:
        try:
            page.screenshot(path=str(screenshot_dir / f"{notebook.stem}-FAILED.png"))
        except Exception:
            pass
        raise
    finally:
        try:
            page.evaluate(JS_CLOSE_WITHOUT_SAVING)
        except Exception:
            pass
        assert notebook.read_bytes() == on_disk, f"{rel} was modified on disk by the browser session"


def _open_and_run_all(page, lab_server, rel: str, timings: dict, t0: float) -> None:
    """Open ``rel`` in JupyterLab, wait for its kernel, run all cells and require no error."""
    page.goto(lab_server.url(f"lab/tree/{rel}?reset"), wait_until="domcontentloaded", timeout=120_000)
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=120_000)
    page.evaluate("async () => { await window.jupyterapp.started; await window.jupyterapp.restored; }")
    try:
        page.wait_for_function(JS_NOTEBOOK_READY, arg=rel, timeout=KERNEL_START_S * 1000, polling=500)
    except Exception:
        # a kernel dialog ("Select Kernel") would block the start: accept its default
        for button in page.locator(".jp-Dialog .jp-mod-accept").all():
            button.click()
        page.wait_for_function(JS_NOTEBOOK_READY, arg=rel, timeout=KERNEL_START_S * 1000, polling=500)
    timings["kernel ready"] = time.monotonic() - t0
    page.evaluate(JS_RUN_ALL)
    page.wait_for_function("() => window.__snnlabRunAll !== null", timeout=RUN_ALL_S * 1000, polling=1000)
    result = page.evaluate("() => window.__snnlabRunAll")
    page.wait_for_function(JS_IDLE_AND_DONE, timeout=RUN_ALL_S * 1000, polling=500)
    timings["run all"] = time.monotonic() - t0
    errors = page.evaluate(JS_ERRORS)
    assert result.get("ok") and not errors, f"{rel}: run all cells failed: {result}\n" + "\n".join(errors)


# The status line of the draw-a-digit explorer (an ipywidgets HTML widget), once it has answered.
JS_DECISION = """() => Array.from(document.querySelectorAll('.jp-Notebook .widget-html-content'))
  .map((e) => e.innerText.trim()).find((t) => t.startsWith('decision:')) || ''"""


def test_draw_a_digit_answers_a_mouse_stroke(browser, lab_server, page, screenshot_dir, explorer_report):
    """Notebook 13: draw a stroke on the ipycanvas canvas with the mouse; the network must answer
    (the status line says ``decision: ...`` and the pipeline figure is shown), with no error."""
    notebook = REPO / "notebooks" / "13_draw_a_digit.ipynb"
    rel = notebook.relative_to(REPO).as_posix()
    t0 = time.monotonic()
    timings = {}
    with _notebook_session(page, notebook, screenshot_dir):
        _open_and_run_all(page, lab_server, rel, timings, t0)
        canvas = page.locator(".jp-Notebook .jp-OutputArea-output canvas").first
        canvas.scroll_into_view_if_needed()
        canvas.wait_for(state="visible", timeout=60_000)
        box = canvas.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, f"{rel}: no drawing canvas ({box})"
        # a "7": along the top, then down to the lower left, as a hand would draw it
        x, y, w, h = box["x"], box["y"], box["width"], box["height"]
        page.mouse.move(x + 0.25 * w, y + 0.2 * h)
        page.mouse.down()
        page.mouse.move(x + 0.75 * w, y + 0.2 * h, steps=12)
        page.mouse.move(x + 0.4 * w, y + 0.85 * h, steps=16)
        page.mouse.up()
        try:
            page.wait_for_function(f"() => ({JS_DECISION})() !== ''", timeout=REDRAW_S * 1000, polling=200)
        except Exception as e:
            errors = page.evaluate(JS_ERRORS)
            raise AssertionError(f"{rel}: no decision within {REDRAW_S} s of the stroke"
                                 + ("; errors in the notebook:\n" + "\n".join(errors) if errors else "")) from e
        page.wait_for_function(JS_IDLE_AND_DONE, timeout=REDRAW_S * 1000, polling=200)
        decision = page.evaluate(JS_DECISION)
        assert decision.endswith("(your digit)"), f"{rel}: the answer is not for the drawn digit: {decision!r}"
        figure = page.locator(".jp-Notebook .widget-image").first
        assert (figure.get_attribute("src") or "").startswith("blob:") or figure.evaluate("(e) => e.naturalWidth") > 0, \
            f"{rel}: the pipeline figure is not shown"
        errors = page.evaluate(JS_ERRORS)
        assert not errors, f"{rel}: error output in the notebook:\n" + "\n".join(errors)
        timings["drawn and answered"] = time.monotonic() - t0
        shot = screenshot_dir / f"{notebook.stem}.png"
        canvas.evaluate("(e) => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        page.screenshot(path=str(shot))
        explorer_report[rel] = {"widgets": 1, "changes": [f"stroke drawn: {decision}"], "screenshot": str(shot),
                                "seconds": round(time.monotonic() - t0, 1),
                                "timings": {k: round(v, 1) for k, v in timings.items()}}
        print(f"\n{rel}: stroke drawn, {decision}, in {time.monotonic() - t0:.1f} s; screenshot {shot}")


@pytest.mark.parametrize("notebook,n_explorers", NOTEBOOKS, ids=[nb.stem for nb, _ in NOTEBOOKS])
def test_explorers_redraw_without_errors(browser, lab_server, page, screenshot_dir, explorer_report,
                                         notebook, n_explorers):
    rel = notebook.relative_to(REPO).as_posix()
    t0 = time.monotonic()
    timings = {}
    with _notebook_session(page, notebook, screenshot_dir):
        _open_and_run_all(page, lab_server, rel, timings, t0)

        boxes = page.locator(".jp-Notebook .widget-interact")
        assert boxes.count() == n_explorers, \
            f"{rel}: {n_explorers} interact(...) cells but {boxes.count()} explorers rendered"
        changes = []
        for i in range(n_explorers):
            box = boxes.nth(i)
            box.scroll_into_view_if_needed()
            assert box.evaluate(JS_FIGURE), f"{rel}: explorer {i + 1} shows no figure after run-all"
            controls = box.locator(".widget-slider, .widget-dropdown, .widget-checkbox")
            assert controls.count() > 0, f"{rel}: explorer {i + 1} has no slider, dropdown or checkbox"
            for j in range(controls.count()):
                ctl = controls.nth(j)
                texts = ctl.locator(".widget-label").all_inner_texts() + [ctl.inner_text()]
                name = next((t.replace("\u200b", "").strip().splitlines()[0] for t in texts
                             if t.replace("\u200b", "").strip()), f"#{j + 1}")
                label = f"explorer {i + 1} {name}"
                cls = ctl.get_attribute("class") or ""
                if "widget-dropdown" in cls:
                    changes.append(_exercise_dropdown(page, box, ctl, label))
                elif "widget-checkbox" in cls:
                    changes.append(_exercise_checkbox(page, box, ctl, label))
                else:
                    changes.append(_exercise_slider(page, box, ctl, label))
        timings["widgets"] = time.monotonic() - t0

        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        boxes.first.evaluate("(e) => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
        page.wait_for_timeout(500)
        shot = screenshot_dir / f"{notebook.stem}.png"
        page.screenshot(path=str(shot))
        boxes.first.screenshot(path=str(screenshot_dir / f"{notebook.stem}-explorer.png"))
        explorer_report[rel] = {"widgets": len(changes), "changes": changes, "screenshot": str(shot),
                                "seconds": round(time.monotonic() - t0, 1),
                                "timings": {k: round(v, 1) for k, v in timings.items()}}
        print(f"\n{rel}: {len(changes)} widgets exercised in {time.monotonic() - t0:.1f} s; screenshot {shot}")
        for c in changes:
            print("   ", c)
