"""The site and the slides (unigm.course.site) and the nbval recorder (unigm.course.nbrecord), without a
browser: a tiny lecture executed for real, the pages built from it, every link and script resolved on
disk, nothing fetched from another host. tests/browser/ opens the real course's pages in Chromium."""
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest

from unigm.course import cli, site

LECTURE = '''# %% [markdown] slideshow={"slide_type": "slide"}
# # 07 Tiny: a lecture for the tests
#
# The Gaussian density $p(x) = e^{-x^2/2} / \\sqrt{2\\pi}$.

# %%
import matplotlib.pyplot as plt
print("mean", 0.5)
plt.plot([0, 1], [0, 1]); plt.xlabel("x"); plt.ylabel("y"); plt.show()

# %% [markdown] slideshow={"slide_type": "slide"}
# ## 1. A second slide
#
# $$\\int p(x)\\,dx = 1$$

# %% tags=["checks"]
assert 0.5 == 0.5, "SECRET-CHECK-CELL"

# %% tags=["helpers"]
HELPER_SOURCE = 1
'''

EXERCISE = '''# %% [markdown]
# # Exercise 07: tiny
#
# Show that $\\int_0^1 x\\,dx = 1/2$.

# %%
# YOUR CODE HERE
raise NotImplementedError("write your answer")
'''


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A one-lecture course, executed by `unigm course`, with one exercise and a README."""
    root = tmp_path_factory.mktemp("course")
    (root / "lectures").mkdir()
    (root / "exercises").mkdir()
    source = root / "lectures" / "07_tiny.py"
    source.write_text(LECTURE)
    (root / "exercises" / "07_tiny.py").write_text(EXERCISE)
    (root / "README.md").write_text("# Tiny\n\nSee [the lecture](lectures/07_tiny.py), where $x^2 \\ge 0$.\n")
    cli.course([source], root / "build")
    return root


def build(course):
    return site.build_site(course / "build" / "executed", course / "build" / "site", readme=course / "README.md",
                           exercises=course / "exercises", sources=[course / "lectures" / "07_tiny.py"])


def local_targets(page: Path) -> list[str]:
    text = page.read_text(encoding="utf-8")
    return re.findall(r"""(?:src|href)=["']([^"'#]+)""", text)


def test_the_site_has_every_page_and_every_link_resolves(course):
    index = build(course)
    out = index.parent
    pages = sorted(out.rglob("*.html"))
    names = {p.relative_to(out).as_posix() for p in pages if "_static" not in p.parts}
    assert names == {"index.html", "readme.html", "course-map.html", "lectures/07_tiny.html", "exercises/07_tiny.html",
                     "slides/07_tiny.slides.html", "slides/index.html"}
    for page in pages:
        if "_static" in page.parts:
            continue
        for target in local_targets(page):
            parts = urlsplit(target)
            assert parts.scheme in ("", "data"), f"{page.name} loads {target} from another host"
            if parts.scheme == "data":
                continue
            assert (page.parent / unquote(parts.path)).resolve().exists(), f"{page.name}: {target} does not exist"


def test_make_slides_writes_decks_that_stand_alone(course, tmp_path):
    decks = site.build_slides(course / "build" / "executed", tmp_path / "slides", [course / "lectures" / "07_tiny.py"])
    assert [d.name for d in decks] == ["07_tiny.slides.html"]
    for page in (decks[0], tmp_path / "slides" / "index.html"):
        for target in local_targets(page):
            assert urlsplit(target).scheme in ("", "data"), f"{page.name} loads {target} from another host"
            if not target.startswith("data:"):
                assert (page.parent / urlsplit(target).path).exists(), f"{page.name}: {target} does not exist"


def test_pages_show_what_was_executed_and_hide_the_checks(course):
    out = build(course).parent
    lecture = (out / "lectures" / "07_tiny.html").read_text()
    assert "mean 0.5" in lecture and "data:image/png;base64" in lecture  # the executed outputs
    assert "SECRET-CHECK-CELL" not in lecture and "HELPER_SOURCE" not in lecture
    assert "_static/mathjax/MathJax.js" in lecture and "$p(x) = e^{-x^2/2}" in lecture
    assert "lectures/07_tiny.html" in (out / "readme.html").read_text()  # README's link points at the page
    assert "../slides/07_tiny.slides.html" in lecture
    deck = (out / "slides" / "07_tiny.slides.html").read_text()
    assert deck.count("<section") >= 2 + 2, "two slides, each a vertical stack of sections"
    assert "../_static/reveal/dist/reveal.js" in deck and "SECRET-CHECK-CELL" not in deck


def test_a_stale_or_failed_lecture_is_refused(course, tmp_path):
    executed = course / "build" / "executed"
    source = course / "lectures" / "07_tiny.py"
    with pytest.raises(site.SiteError, match="missing: run `make course`"):
        site.load_executed(tmp_path, source)
    changed = tmp_path / "07_tiny.py"
    changed.write_text(LECTURE + "\n# %%\nprint('new')\n")
    with pytest.raises(site.SiteError, match="another version"):
        site.load_executed(executed, changed)
    nb = nbformat.read(executed / "07_tiny.ipynb", as_version=4)
    nb.cells[1].outputs.append(nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[]))
    broken = tmp_path / "broken"
    broken.mkdir()
    nbformat.write(nb, broken / "07_tiny.ipynb")
    with pytest.raises(site.SiteError, match="ValueError: boom"):
        site.load_executed(broken, source)


def test_prepare_replaces_a_live_widget_by_a_note():
    nb = nbformat.v4.new_notebook()
    nb.metadata["widgets"] = {"state": {}}
    cell = nbformat.v4.new_code_cell("explorer.show()", outputs=[
        nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}),
        nbformat.v4.new_output("display_data", data={site.WIDGET_VIEW: {"model_id": "abc"}, "text/plain": "VBox()"})])
    nb.cells = [cell, nbformat.v4.new_code_cell("assert True", metadata={"tags": ["checks"]})]
    ready = site.prepare(nb)
    assert len(ready.cells) == 1 and "widgets" not in ready.metadata
    assert ready.cells[0].outputs[0].data["image/png"] == "iVBORw0KGgo="  # the static figure stays
    assert ready.cells[0].outputs[1].data == {"text/html": site.EXPLORER_NOTE}
    assert len(nb.cells) == 2, "prepare works on a copy"


def test_nbval_runs_are_recorded_as_executed_notebooks(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("print(6 * 7)"), nbformat.v4.new_code_cell("21 * 2"),
                nbformat.v4.new_code_cell("raise ValueError('recorded')")]
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    run = subprocess.run([sys.executable, "-m", "pytest", str(tmp_path / "tiny.ipynb"), "--nbval-lax",
                          "--nbval-current-env", "-p", "unigm.course.nbrecord", "--executed-out", str(tmp_path / "out"),
                          "-p", "no:cacheprovider", "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1, run.stdout[-2000:]  # the third cell fails, as it should
    executed = nbformat.read(tmp_path / "out" / "tiny.ipynb", as_version=4)
    first, second, third = executed.cells
    assert first.outputs[0].text == "42\n" and first.execution_count == 1
    assert second.outputs[0].data["text/plain"] == "42" and second.outputs[0].execution_count == 2
    assert third.outputs[-1].output_type == "error" and third.outputs[-1].evalue == "recorded"
    assert executed.metadata["unigm"]["failed_cells"] == [2]
    nbformat.validate(executed)
