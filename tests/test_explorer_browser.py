"""irec.explorer in a real browser: notebook 08 opened in JupyterLab, driven in headless Chromium.

One end-to-end test: a JupyterLab server (a subprocess, on a free local port, with a random token and private
config, runtime, settings and workspace folders) serves a copy of notebooks/08_explorer.ipynb whose parameters
point at a tiny untrained lossless model and one CIFAR-10 image. Debian's chromium (``/usr/bin/chromium``,
driven by Playwright; never ``playwright install``) opens it, runs all cells, presses **encode**, moves the
Omega slider with the keyboard, presses **encode** again, checks that the bits chart, the image comparison, the
rate-quality plot and the history (two rows, the second with N = 403) are on the page, adds the reference
codecs to the plot, then sweeps Omega over three
values and waits for the sweep's plot. With ``IREC_SCREENSHOTS=<folder>`` it saves the press, the history and the
sweep as PNGs there (how docs/explorer-{controls,press,history,sweep}.png were made).

Nothing is written into the repository: the notebook, the model and every Jupyter and Chromium folder live in
``tmp_path``. The first press may compile the coder's numba kernels (a minute or two on a cold cache), hence
the generous timeouts.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium "
                                                       "(apt-get install chromium; .ci/run installs it)"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package (pip install -e .[dev])")

NOTEBOOK = "08_explorer.ipynb"
SERVER_START_S = 180  # JupyterLab answering /api/status
PAGE_S = 180  # the lab page loaded and the notebook's kernel idle
CELLS_S = 300  # all cells run: imports, the CIFAR-10 image, the widgets rendered
ENCODE_S = 600  # one press of encode: the first may compile the coder's numba kernels on a cold cache
OMEGA_STEPS = 8  # ArrowRight presses on the Omega slider: 3.0 -> 5.0 nats in steps of 0.25


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, n: int = 4000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else "(no log)"


@pytest.fixture
def explorer_notebook(tmp_path, shared_data) -> Path:
    """A copy of notebook 08 in tmp_path whose parameters offer a tiny lossless model and one CIFAR-10 image."""
    import papermill

    from irec.paths import NOTEBOOKS
    from tests.models import save_small

    model = tmp_path / "tiny-rvae.pt"
    save_small("lossless", model, seed=0)  # the same tiny model every run, so the same numbers
    folder = tmp_path / "lab"
    folder.mkdir()
    papermill.execute_notebook(
        str(NOTEBOOKS / NOTEBOOK), str(folder / NOTEBOOK), kernel_name="python3", prepare_only=True,
        progress_bar=False,
        parameters={"profile": "smoke", "model_paths": [str(model)], "n_cifar": 1, "n_kodak": 0, "n_beams": 2,
                    "extra_samples": 1.2, "kl_per_step": 3.0, "sampler": "beam", "auto_run": False},
    )
    return folder / NOTEBOOK


@pytest.fixture
def jupyterlab(tmp_path, shared_data, explorer_notebook):
    """A JupyterLab server serving the notebook's folder: yields (base url, token); shut down afterwards."""
    port, token = _free_port(), secrets.token_hex(16)
    private = tmp_path / "jupyter"
    env = dict(os.environ, IREC_DATA=str(shared_data), MPLBACKEND="Agg", OMP_NUM_THREADS="1",
               PYDEVD_DISABLE_FILE_VALIDATION="1", JUPYTER_CONFIG_DIR=str(private / "config"),
               JUPYTER_DATA_DIR=str(private / "data"), JUPYTER_RUNTIME_DIR=str(private / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(private / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(private / "workspaces"), IPYTHONDIR=str(private / "ipython"))
    log = tmp_path / "jupyterlab.log"
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--ServerApp.allow_root=True",
        "--ServerApp.terminals_enabled=False",
        f"--ServerApp.root_dir={explorer_notebook.parent}", "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]
    with open(log, "wb") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env,
                                  cwd=explorer_notebook.parent, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if server.poll() is not None:
                pytest.fail(f"JupyterLab exited with {server.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{_tail(log)}")
            time.sleep(1)
        yield url, token
    finally:
        _stop(server, url, token)


def _stop(server: subprocess.Popen, url: str, token: str) -> None:
    """Ask the server to shut down (it stops its kernels), then terminate, then kill its process group."""
    if server.poll() is None:
        try:
            request = urllib.request.Request(f"{url}/api/shutdown?token={token}", method="POST")
            urllib.request.urlopen(request, timeout=10).close()
        except (urllib.error.URLError, OSError):
            pass
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)  # its own session: the server and what it started
                server.wait(timeout=30)


def _summary(page) -> dict[str, str]:
    """The result's headline table (``irec-summary``) as displayed: row label -> text."""
    return page.evaluate("""() => Object.fromEntries(
        [...document.querySelectorAll('.irec-result table.irec-summary tbody tr')]
        .map(row => [row.querySelector('th').innerText.trim(), row.querySelector('td').innerText.trim()]))""")


def _history(page) -> list[dict[str, str]]:
    """The history table (``irec-history``) as displayed: one dict per press, column -> text."""
    return page.evaluate("""() => {
        const table = document.querySelector('.irec-history table');
        if (!table) return [];
        const header = [...table.querySelectorAll('thead th')].map(cell => cell.innerText.trim());
        return [...table.querySelectorAll('tbody tr')].map(row => Object.fromEntries(
            [...row.querySelectorAll('td')].map((cell, i) => [header[i], cell.innerText.trim()])));
    }""")


def _drawn(page, selector: str) -> bool:
    """Whether the image widget ``selector`` shows a decoded PNG (not hidden, not empty)."""
    return page.evaluate("""selector => {
        const image = document.querySelector(selector);
        return !!image && image.offsetParent !== null && image.complete && image.naturalWidth > 0;
    }""", selector)


def _press_encode_and_wait(page, presses: int) -> dict[str, str]:
    """Click encode; wait until the history holds ``presses`` rows and the press's charts are drawn; read it."""
    page.locator("button.irec-encode").click()
    page.wait_for_function(
        """presses => document.querySelectorAll('.irec-history table tbody tr').length === presses
          || document.querySelector('.irec-message').innerText.includes('Cannot encode')""",
        arg=presses, timeout=ENCODE_S * 1000, polling=500)
    assert page.locator(".irec-message").inner_text().strip() == ""
    page.locator(".irec-progress").get_by_text("done", exact=True).wait_for(timeout=60_000)
    for selector in ("img.irec-bits-chart", "img.irec-comparison", "img.irec-rate-quality"):
        page.wait_for_function("s => { const i = document.querySelector(s); "
                               "return !!i && i.offsetParent !== null && i.complete && i.naturalWidth > 0; }",
                               arg=selector, timeout=60_000, polling=250)
    return _summary(page)


def _screenshot(page, selector: str, name: str) -> None:
    """With IREC_SCREENSHOTS set to a folder, save the element ``selector`` there as ``name`` (for docs/)."""
    folder = os.environ.get("IREC_SCREENSHOTS")
    if folder:
        page.add_style_tag(content=".Toastify { display: none !important; }")  # JupyterLab's news question
        page.locator(selector).screenshot(path=str(Path(folder) / name))


def test_two_presses_and_a_sweep_in_jupyterlab_show_charts_a_history_and_a_sweep_plot(jupyterlab, tmp_path):
    url, token = jupyterlab
    started = time.monotonic()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1800, "height": 2400} if os.environ.get("IREC_SCREENSHOTS") else
            {"width": 1400, "height": 1000})
        errors: list[str] = []
        try:
            page = browser.new_page()
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.set_default_timeout(60_000)
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}", wait_until="domcontentloaded",
                      timeout=PAGE_S * 1000)
            page.wait_for_function(
                """name => {
                    const widget = window.jupyterapp?.shell.currentWidget;
                    return widget?.context?.path === name
                           && widget.sessionContext?.session?.kernel?.status === 'idle';
                }""", arg=NOTEBOOK, timeout=PAGE_S * 1000, polling=500)
            page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

            encode = page.locator("button.irec-encode")
            encode.wait_for(state="visible", timeout=CELLS_S * 1000)
            omega = page.locator(".widget-hslider", has_text="Ω (nats per step)")
            candidates = page.locator(".irec-candidates")
            assert omega.locator(".widget-readout").inner_text().strip() == "3.00"
            assert "= 36 candidates per step" in candidates.inner_text()
            assert page.locator(".irec-controls").get_by_text("nats of KL coded per step").count() == 1
            assert not _drawn(page, "img.irec-rate-quality")  # no press yet: no plot, nothing stale

            before = _press_encode_and_wait(page, presses=1)
            assert before["B"] == "2" and before["1+eps"] == "1.2" and before["N"] == "36"
            assert before["exact"] == "True" and before["kind"] == "lossless" and "real bpd" in before

            handle = omega.locator(".noUi-handle")
            handle.focus()
            for _ in range(OMEGA_STEPS):
                handle.press("ArrowRight")
            sync_api.expect(omega.locator(".widget-readout")).to_have_text("5.00")
            # the candidate line is written by the kernel: once it reads N = 403, the kernel has Omega = 5
            sync_api.expect(candidates).to_contain_text("= 403 candidates per step", timeout=60_000)

            after = _press_encode_and_wait(page, presses=2)
            history = _history(page)
            plot = page.locator("img.irec-rate-quality").get_attribute("src")
            page.locator("button.irec-references").click()  # the classical codecs on the image, dashed
            sync_api.expect(page.locator(".irec-history-note")).to_contain_text("references", timeout=ENCODE_S * 1000)
            page.wait_for_function("""before => { const image = document.querySelector('img.irec-rate-quality');
                return image.getAttribute('src') !== before && image.complete && image.naturalWidth > 0; }""",
                                   arg=plot, timeout=60_000, polling=250)
            _screenshot(page, ".irec-controls", "explorer-controls.png")
            _screenshot(page, ".irec-press", "explorer-press.png")
            _screenshot(page, ".irec-history-panel", "explorer-history.png")

            page.locator(".irec-sweep-count input").fill("3")
            page.locator(".irec-sweep-count input").press("Tab")
            page.locator("button.irec-sweep-run").click()
            page.locator(".irec-sweep-progress").get_by_text("done", exact=True).wait_for(timeout=ENCODE_S * 1000)
            page.wait_for_function("() => document.querySelectorAll('.irec-sweep-table tbody tr').length === 3",
                                   timeout=60_000, polling=250)
            assert _drawn(page, "img.irec-sweep-plot")
            _screenshot(page, ".irec-sweep", "explorer-sweep.png")
        finally:
            browser.close()
    assert after["N"] == "403" and after["B"] == "2" and after["exact"] == "True"
    assert [row["press"] for row in history] == ["1", "2"] and [row["N"] for row in history] == ["36", "403"]
    assert all(row["exact"] == "True" and row["unit"] == "bpd" for row in history)
    assert not errors, errors
    print(f"browser test: {time.monotonic() - started:.0f} s in the browser; before {before}, after {after}")
