"""irec.explorer in a real browser: notebook 08 opened in JupyterLab, driven in headless Chromium.

One end-to-end test: a JupyterLab server (a subprocess, on a free local port, with a random token and private
config, runtime, settings and workspace folders) serves a copy of notebooks/08_explorer.ipynb whose parameters
point at a tiny untrained lossless model and one CIFAR-10 image. Debian's chromium (``/usr/bin/chromium``,
driven by Playwright; never ``playwright install``) opens it, runs all cells, presses **encode**, moves the
Omega slider with the keyboard, presses **encode** again and checks that the numbers on the page changed.

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


def _bits(page) -> dict[str, list[str]]:
    """The result's bits table (``irec-bits``) as displayed: part -> [real, ideal, overhead] texts."""
    header = page.evaluate("""() => [...document.querySelectorAll('.irec-result table.irec-bits thead th')]
        .map(cell => cell.innerText.trim())""")
    assert header == ["part", "real bits", "ideal bits", "overhead bits"], header
    rows = page.evaluate("""() => [...document.querySelectorAll('.irec-result table.irec-bits tbody tr')]
        .map(row => [...row.querySelectorAll('td')].map(cell => cell.innerText.trim()))""")
    return {row[0]: row[1:] for row in rows}


def _press_encode_and_wait(page, omega: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Click encode; wait until the page shows a result coded with Omega = ``omega`` (as displayed); read it."""
    page.locator("button.irec-encode").click()
    page.wait_for_function(
        """omega => [...document.querySelectorAll('.irec-result table.irec-summary tbody tr')]
            .some(row => row.querySelector('th').innerText.trim() === 'Omega'
                         && row.querySelector('td').innerText.trim() === omega)
          || document.querySelector('.irec-message').innerText.includes('Cannot encode')""",
        arg=omega, timeout=ENCODE_S * 1000, polling=500)
    assert page.locator(".irec-message").inner_text().strip() == ""
    page.locator(".irec-progress").get_by_text("done", exact=True).wait_for(timeout=60_000)
    return _summary(page), _bits(page)


def test_moving_a_slider_and_pressing_encode_in_jupyterlab_changes_the_numbers(jupyterlab, tmp_path):
    url, token = jupyterlab
    started = time.monotonic()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
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
            omega = page.locator(".widget-hslider", has_text="Omega (nats)")
            candidates = page.locator(".irec-candidates")
            assert omega.locator(".widget-readout").inner_text().strip() == "3.00"
            assert "= 36 candidates per step" in candidates.inner_text()

            before, bits_before = _press_encode_and_wait(page, omega="3")
            assert before["B"] == "2" and before["1+eps"] == "1.2" and before["N"] == "36"
            assert before["exact"] == "True" and before["kind"] == "lossless" and "real bpd" in before

            handle = omega.locator(".noUi-handle")
            handle.focus()
            for _ in range(OMEGA_STEPS):
                handle.press("ArrowRight")
            sync_api.expect(omega.locator(".widget-readout")).to_have_text("5.00")
            # the candidate line is written by the kernel: once it reads N = 403, the kernel has Omega = 5
            sync_api.expect(candidates).to_contain_text("= 403 candidates per step", timeout=60_000)

            after, bits_after = _press_encode_and_wait(page, omega="5")
        finally:
            browser.close()
    assert after["N"] == "403" and after["B"] == "2" and after["exact"] == "True"
    levels = [part for part in bits_before if part.startswith("level ")]
    assert levels and levels == [part for part in bits_after if part.startswith("level ")]
    # each coded step's index costs log2 N bits: N = 36 -> 403 changes the real bits of every latent level
    assert all(bits_before[level][0] != bits_after[level][0] for level in levels), (bits_before, bits_after)
    assert not errors, errors
    print(f"browser test: {time.monotonic() - started:.0f} s in the browser; before {before}, after {after}")
