"""Fixtures of the browser tests: a JupyterLab server of this environment and headless Chromium.

The server runs ``sys.executable -m jupyterlab`` (so the ``python3`` kernelspec resolves to
this environment's Python) on 127.0.0.1, a free port and a random token, rooted at the
repository, with ``SNNLAB_QUICK=1`` in its environment (kernels inherit it). Its Jupyter
config, data, runtime, IPython, settings and workspace folders are private temporary
folders; notebook autosave and news/update checks are switched off, so opening a notebook
never writes it back.

Chromium is Debian's ``/usr/bin/chromium`` (or ``$SNNLAB_CHROMIUM``) driven by the Python
``playwright`` package; ``playwright install`` is never needed. Without a browser the tests
skip on a developer machine and fail in CI (``CI`` set to true).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
INSTALL_HINT = ("install a browser and the driver: `apt-get install chromium` (Debian/Ubuntu) and "
                "`.venv/bin/pip install -e '.[browser]'`; set SNNLAB_CHROMIUM to use another Chromium binary")

# JupyterLab user settings: no autosave (notebooks on disk stay untouched), no news/update toasts.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def _missing(reason: str):
    """Fail in CI, skip elsewhere, always saying how to install what is missing."""
    msg = f"browser tests: {reason}; {INSTALL_HINT}"
    if in_ci():
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def chromium_executable() -> str | None:
    """``$SNNLAB_CHROMIUM`` when set (and only it), else Debian's /usr/bin/chromium or one on PATH."""
    override = os.environ.get("SNNLAB_CHROMIUM")
    cands = [override] if override else ["/usr/bin/chromium", shutil.which("chromium"),
                                         shutil.which("chromium-browser")]
    for cand in cands:
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """A running JupyterLab: ``url(path)`` gives an address with the token."""

    def __init__(self, base: str, token: str, proc: subprocess.Popen, log: Path):
        self.base, self.token, self.proc, self.log = base, token, proc, log

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(f"{self.base}/api/{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@pytest.fixture(scope="session")
def lab_server():
    pytest.importorskip("jupyterlab", reason="jupyterlab missing: `.venv/bin/pip install -e '.[dev]'`")
    tmp = Path(tempfile.mkdtemp(prefix="snnlab-lab-"))
    settings = tmp / "settings"
    for name, value in LAB_SETTINGS.items():
        f = settings / name
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(value))
    for d in ("workspaces", "config", "data", "runtime", "ipython"):
        (tmp / d).mkdir()
    port, token = _free_port(), secrets.token_hex(24)
    env = dict(os.environ,
               SNNLAB_QUICK="1",                 # kernels inherit it: notebooks in quick mode
               JUPYTER_CONFIG_DIR=str(tmp / "config"), JUPYTER_DATA_DIR=str(tmp / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"), IPYTHONDIR=str(tmp / "ipython"),
               JUPYTER_PREFER_ENV_PATH="1", PYDEVD_DISABLE_FILE_VALIDATION="1")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={REPO}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'workspaces'}",
           "--ServerApp.terminals_enabled=False"]
    log = tmp / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = LabServer(f"http://127.0.0.1:{port}", token, proc, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                server.api("status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not answer within 180 s:\n{server.log_tail()}", pytrace=False)
                time.sleep(0.5)
        print(f"\nJupyterLab {server.base} (log {log})")
        yield server
    finally:
        _stop(server)
        shutil.rmtree(tmp, ignore_errors=True)


def _stop(server: LabServer) -> None:
    """Shut the server down (kernels first); escalate to signals on its own process group."""
    proc = server.proc
    if proc.poll() is None:
        try:
            server.api("shutdown", method="POST")
        except Exception:
            pass
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:  # the server and its kernels: the process group we created (start_new_session)
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="session")
def browser():
    exe = chromium_executable()
    if exe is None:
        where = os.environ.get("SNNLAB_CHROMIUM") or "/usr/bin/chromium (or chromium on PATH)"
        _missing(f"no Chromium executable at {where}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the Python package `playwright` is not installed")
    pw = sync_playwright().start()
    try:
        try:
            b = pw.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_ARGS, timeout=120_000)
        except Exception as e:  # a broken or incompatible browser is an error, not a skip
            pytest.fail(f"could not start {exe}: {e}", pytrace=False)
        yield b
        b.close()
    finally:
        pw.stop()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    ctx.set_default_timeout(60_000)
    pg = ctx.new_page()
    try:
        yield pg
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for stale in SCREENSHOTS.glob("*-FAILED.png"):
        stale.unlink()
    return SCREENSHOTS


_REPORT: dict[str, dict] = {}


@pytest.fixture(scope="session")
def explorer_report() -> dict:
    """Per notebook: widgets exercised, screenshot, seconds (printed at the end of the run)."""
    return _REPORT


def pytest_terminal_summary(terminalreporter):
    if not _REPORT:
        return
    tr = terminalreporter
    tr.section("browser: widget explorers")
    for nb, r in _REPORT.items():
        tr.write_line(f"{nb}: {r['widgets']} widgets exercised in {r['seconds']} s {r['timings']}; "
                      f"screenshot {r['screenshot']}")
    tr.write_line(f"total: {sum(r['widgets'] for r in _REPORT.values())} widgets exercised in "
                  f"{len(_REPORT)} notebooks; screenshots in {SCREENSHOTS}")
