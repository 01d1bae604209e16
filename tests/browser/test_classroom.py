"""The course in a real browser, as a student and an audience meet it (`make browser-test`).

1. JupyterLab from the project's venv, on a free localhost port, driven by headless Chromium (Debian's
   package) through Playwright: open lecture 00 from the file browser, run all cells, see no error,
   move the steps slider of its sampler explorer and see the figure change (the time it takes is printed).
2. With every request outside 127.0.0.1 blocked: the built site and slides (make site), every page:
   formulas typeset by the site's own MathJax, no MathJax error, every image loaded, as many figures as
   the executed notebook has, and nothing asked of another host.

Screenshots go to build/screenshots/. Needs /usr/bin/chromium (or $UNIGM_CHROMIUM): `make browser-test`
installs Debian's package when it is missing; this file fails with that hint when it is not there.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from unigm.course import cli, site

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is pinned in requirements.lock")

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
SHOTS = BUILD / "screenshots"
LECTURE = "00_quickstart"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 # the network, blocked: no host name resolves except the local one
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


def chromium_path() -> str:
    path = os.environ.get("UNIGM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        pytest.fail("no Chromium: `make browser-test` installs Debian's chromium (apt-get install chromium), "
                    "or set UNIGM_CHROMIUM to a Chromium binary")
    return path


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def offline_context(browser, allowed: str):
    """A browser context in which every request that does not start with `allowed` is aborted and recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.blocked = []

    def route(r):
        if r.request.url.startswith(allowed) or r.request.url.startswith(("data:", "blob:")):
            r.continue_()
        else:
            context.blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    return context


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------------
# 1. a student in JupyterLab

@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on a free port, its root a folder holding lecture 00 (converted from its source), its
    Jupyter paths private (no user kernels or settings leak in), cells all kept in the page (no windowing)."""
    root = BUILD / "browser-lab"
    shutil.rmtree(root, ignore_errors=True)
    cli.to_notebook(ROOT / "lectures" / f"{LECTURE}.py", root)
    home = tmp_path_factory.mktemp("jupyter")
    settings = home / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), PYTHONUNBUFFERED="1")
    log = open(BUILD / "browser-lab.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}", "--ServerApp.ip=127.0.0.1",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
         "--LabApp.extension_manager=readonly"] + (["--allow-root"] if os.geteuid() == 0 else []),
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail(f"JupyterLab did not start; see {BUILD / 'browser-lab.log'}")
            time.sleep(0.5)
    yield dict(url=url, token=token, root=root)
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


PROMPTS = """() => Array.from(document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt'))
                     .map(e => e.textContent.trim())"""


def test_a_student_runs_lecture_00_and_moves_a_slider(browser, lab):
    context = offline_context(browser, lab["url"])
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{lab['url']}/lab?token={lab['token']}")
    # open the lecture from the file browser, as a student would
    item = page.locator(".jp-DirListing-item", has_text=f"{LECTURE}.ipynb")
    item.wait_for()
    item.dblclick()
    page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
    idle = "() => /\\| Idle/.test(document.querySelector('.jp-StatusBar-Widget, #jp-main-statusbar').innerText)"
    page.wait_for_function(idle, timeout=120_000)  # the status bar reads "Python 3 (ipykernel) | Idle"
    # Run > Run All Cells
    started = time.perf_counter()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    page.wait_for_function(f"""() => {{
        const prompts = ({PROMPTS})();
        return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
    }}""", timeout=600_000)
    run_seconds = time.perf_counter() - started
    page.screenshot(path=str(SHOTS / "lab_lecture_00_ran.png"))
    prompts = page.evaluate(PROMPTS)
    tracebacks = page.evaluate("""() => Array.from(document.querySelectorAll('.jp-OutputArea-output'))
        .map(e => e.textContent).filter(t => t.includes('Traceback (most recent call last)')).length""")
    assert tracebacks == 0, f"{tracebacks} cell(s) of lecture 00 show a traceback in JupyterLab"
    print(f"lecture 00 in JupyterLab: {len(prompts)} code cells run in {run_seconds:.1f} s")

    # the sampler explorer: its steps slider, and the figure (an image widget) it redraws
    explorer = page.locator(".jupyter-widgets.widget-vbox", has=page.locator(".widget-image")).last
    explorer.scroll_into_view_if_needed()
    image = explorer.locator(".widget-image img, img.widget-image").first
    image.wait_for()
    before = image.get_attribute("src")
    readout = explorer.locator(".widget-readout").first
    assert readout.text_content().strip() == "8"
    explorer.screenshot(path=str(SHOTS / "lab_explorer_before.png"))
    handle = explorer.locator(".noUi-handle").first
    handle.focus()
    started = time.perf_counter()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("([img, old]) => img.getAttribute('src') !== old", arg=[image.element_handle(), before],
                           timeout=30_000)
    response = time.perf_counter() - started
    assert readout.text_content().strip() == "16", "the steps slider did not move from 8 to 16"
    explorer.screenshot(path=str(SHOTS / "lab_explorer_after.png"))
    print(f"steps slider 8 -> 16: the figure changed after {response * 1000:.0f} ms (a new ODE solve and W2)")
    # a setting seen before is cached: back to 8 answers in the time of a redraw
    before = image.get_attribute("src")
    started = time.perf_counter()
    page.keyboard.press("ArrowLeft")
    page.wait_for_function("([img, old]) => img.getAttribute('src') !== old", arg=[image.element_handle(), before],
                           timeout=30_000)
    cached = time.perf_counter() - started
    print(f"steps slider 16 -> 8 (cached): {cached * 1000:.0f} ms")
    assert cached < 2.0, f"a cached explorer setting took {cached:.1f} s to redraw in the browser"

    # save, and read back what the kernel produced: every code cell ran, no error output
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    nb = nbformat.read(lab["root"] / f"{LECTURE}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "some code cells of lecture 00 did not run"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, f"lecture 00 raised in JupyterLab: {errors[0].ename}: {errors[0].evalue}"
    assert context.blocked == [], f"JupyterLab asked for other hosts: {context.blocked[:5]}"
    context.close()


# ---------------------------------------------------------------------------------------------------
# 2. the site and the slides, offline

@pytest.fixture(scope="module")
def served_site():
    """build/site (make site) served on a free localhost port."""
    import functools
    import http.server
    import threading

    root = BUILD / "site"
    if not (root / "index.html").exists():
        pytest.fail("no build/site: run `make site` first (make browser-test does)")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield dict(url=f"http://127.0.0.1:{server.server_port}/", root=root)
    server.shutdown()


MATHJAX_DONE = "() => window.MathJax && MathJax.Hub && MathJax.Hub.queue.pending === 0 && !MathJax.Hub.queue.running"
PAGE_STATE = """() => ({
    math: document.querySelectorAll('.MathJax, .MathJax_Display').length,
    mathErrors: document.querySelectorAll('.MathJax_Error, merror, .MathJax .merror').length,
    rawDollars: Array.from(document.querySelectorAll('.jp-RenderedMarkdown'))  // the text, not code cells
        .map(e => (e.innerText.match(/\\$\\\\?[A-Za-z][^$\\n]{0,30}\\$/g) || []).length).reduce((a, b) => a + b, 0),
    images: Array.from(document.images).map(i => ({ok: i.complete && i.naturalWidth > 0, src: i.src.slice(0, 60)})),
})"""


def expectations(nb) -> tuple[int, bool]:
    """What a page made from `nb` must show: its image outputs (as the site prepares the notebook) and
    whether its markdown has formulas."""
    nb = site.prepare(nb)
    figures = sum(1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
    return figures, any("$" in c.source for c in nb.cells if c.cell_type == "markdown")


def site_pages(root: Path) -> list[tuple[str, int | None, bool]]:
    """(page, figures expected or None, has formulas) for every page of the site."""
    import jupytext

    pages = [("index.html", None, False), ("readme.html", None, "$" in (ROOT / "README.md").read_text()),
             ("course-map.html", 1, False)]
    for lecture in sorted((root / "lectures").glob("*.html")):
        figures, math = expectations(nbformat.read(BUILD / "executed" / (lecture.stem + ".ipynb"), as_version=4))
        pages += [(f"lectures/{lecture.name}", figures, math), (f"slides/{lecture.stem}.slides.html", figures, math)]
    for exercise in sorted((root / "exercises").glob("*.html")):
        figures, math = expectations(jupytext.read(ROOT / "exercises" / (exercise.stem + ".py")))
        pages.append((f"exercises/{exercise.name}", figures, math))
    return pages


def test_the_site_and_slides_work_offline(browser, served_site):
    context = offline_context(browser, served_site["url"])
    failed_requests = []
    page = context.new_page()
    page.on("response", lambda r: failed_requests.append(r.url) if r.status >= 400 else None)
    pages = site_pages(served_site["root"])
    assert len([p for p, *_ in pages if p.startswith("lectures/")]) == len(cli.lecture_sources(ROOT / "lectures"))
    for name, figures, has_math in pages:
        page.goto(served_site["url"] + name)
        page.wait_for_function(MATHJAX_DONE, timeout=60_000)
        state = page.evaluate(PAGE_STATE)
        assert state["mathErrors"] == 0, f"{name}: {state['mathErrors']} formula(s) failed to typeset"
        if has_math:
            assert state["math"] > 0, f"{name}: its formulas were not typeset"
        assert state["rawDollars"] == 0, f"{name}: TeX left as text, e.g. $...$ ({state['rawDollars']} found)"
        broken = [i["src"] for i in state["images"] if not i["ok"]]
        assert not broken, f"{name}: images did not load: {broken[:3]}"
        if figures is not None:
            assert len(state["images"]) == figures, f"{name}: {len(state['images'])} images, the notebook has {figures}"
        shot = name.replace("/", "_").replace(".html", ".png")
        page.screenshot(path=str(SHOTS / f"site_{shot}"))
        print(f"{name}: {state['math']} formulas, {len(state['images'])} images")
    # a deck, moved to its second slide: the formulas there are typeset once it is shown
    page.goto(served_site["url"] + f"slides/{LECTURE}.slides.html#/1")
    page.wait_for_function(MATHJAX_DONE, timeout=60_000)
    page.screenshot(path=str(SHOTS / "slides_00_second_slide.png"))
    assert context.blocked == [], f"the site asked for other hosts (a CDN?): {sorted(set(context.blocked))[:5]}"
    # MathJax probes for the TeX web fonts, which the offline package leaves out (it uses STIX-Web instead)
    missing = [u for u in failed_requests if "/_static/mathjax/fonts/HTML-CSS/TeX/" not in u]
    assert not missing, f"the site links to files it does not have: {missing[:5]}"
    context.close()
