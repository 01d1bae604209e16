"""The course as a static site and as reveal.js slides, both built from the executed lectures.

    python -m unigm.course.site site   [--executed build/executed] [--out build/site]     (make site)
    python -m unigm.course.site slides [--executed build/executed] [--out build/slides]   (make slides)

The executed lectures are `build/executed/NN_name.ipynb`, written by `make course` (nbclient) or by
`make test` (nbval, through unigm.course.nbrecord): the site shows the outputs that were tested. A
notebook executed from an older source, or one with an error output, is refused with a message that
says what to run.

The site: index.html (the lectures with their run time, slides and exercise), readme.html (README.md),
course-map.html (unigm.course.course_map: the figure and every edge with its evidence), lectures/
(executed), exercises/ (the student versions, not executed), slides/ and _static/. The slides: one
reveal.js deck per lecture, slide breaks from the cells' `slideshow` metadata (lectures/AUTHORING.md).
Both hide the cells tagged "checks" and the inputs of cells tagged "helpers", and replace a live
explorer's widget by a note (the static figure of its default state, shown above it, stays).

Tools: nbconvert renders the notebooks (it is already the course's exporter, it renders outputs with
JupyterLab's own styles, and its slides exporter reads the slide metadata) through two small
templates in templates/ that drop its CDN scripts. MathJax 2.7 comes from the jupyter-server-mathjax
package (the Jupyter project's offline MathJax) and reveal.js 5 from the sphinx-revealjs package,
both pinned on PyPI: they are copied into _static/, so nothing is fetched from a network, and no npm
is needed.
"""
from __future__ import annotations

import argparse
import copy
import html
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .cli import LECTURES, lecture_sources, source_digest

TEMPLATES = Path(__file__).parent / "templates"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
EXPLORER_NOTE = ("<p class='unigm-explorer-note'>Interactive explorer: open this lecture in JupyterLab "
                 "(<code>make lab</code>) to move its controls. The figure above shows its default state.</p>")
# jupyter-server-mathjax ships the STIX-Web fonts, not the TeX web fonts MathJax asks for by default
MATHJAX_FONTS = """<script type="text/x-mathjax-config">
MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null},
                   messageStyle: "none"});
</script>"""
BUDGET_SECONDS = {"00": 60, "01": 480, "02": 120, "03": 180, "04": 180, "05": 180}  # quick profile, 2-core CPU


class SiteError(RuntimeError):
    """What is missing or wrong for building the site, and what to run."""


def asset_dirs() -> dict[str, Path]:
    """Where the pinned packages keep MathJax and reveal.js."""
    try:
        import jupyter_server_mathjax
        import sphinx_revealjs
    except ImportError as err:
        raise SiteError(f"{err.name} is missing: install the pins with `make site` (or pip install -r "
                        "requirements.lock); it provides the offline copy of MathJax / reveal.js") from err
    return {"mathjax": Path(jupyter_server_mathjax.__file__).parent / "static",
            "reveal": Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs"}


def copy_static(out: Path) -> Path:
    """MathJax, reveal.js (the dist build and the notes plugin) and course.css into out/_static."""
    static = out / "_static"
    assets = asset_dirs()
    shutil.copytree(assets["mathjax"], static / "mathjax", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    for part in ("dist", "plugin/notes"):
        shutil.copytree(assets["reveal"] / part, static / "reveal" / part, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("*.map"))
    shutil.copy(TEMPLATES / "course.css", static / "course.css")
    return static


# ---------------------------------------------------------------------------------------------------
# reading and preparing notebooks

def title_of(nb) -> str:
    """The first markdown heading of a notebook (without '#')."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return "untitled"


def load_executed(executed: Path, source: Path):
    """The executed notebook of a lecture source; SiteError if it is missing, stale or has an error."""
    path = executed / (source.stem + ".ipynb")
    if not path.exists():
        raise SiteError(f"{path} is missing: run `make course` (or `make test`) to execute the lectures first")
    nb = nbformat.read(path, as_version=4)
    recorded = nb.metadata.get("unigm", {}).get("source_sha256")
    if recorded != source_digest(source):
        raise SiteError(f"{path} was executed from another version of {source}: run `make course` again")
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                raise SiteError(f"{path}, cell {index}, raised {output.get('ename')}: {output.get('evalue')}; "
                                "fix the lecture and run `make course` again")
    return nb


def prepare(nb):
    """A copy fit for reading: no 'checks' cells, no input of 'helpers' cells, widgets replaced by a note."""
    nb = copy.deepcopy(nb)
    kept = []
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if "checks" in tags:
            continue
        if "helpers" in tags:
            cell.metadata.setdefault("transient", {})["remove_source"] = True
            cell.source = ""
        for i, output in enumerate(cell.get("outputs", [])):
            if WIDGET_VIEW in output.get("data", {}):
                cell.outputs[i] = nbformat.v4.new_output("display_data", data={"text/html": EXPLORER_NOTE})
        kept.append(cell)
    nb.cells = kept
    nb.metadata.pop("widgets", None)
    return nb


def markdown_notebook(title: str, *cells) -> nbformat.NotebookNode:
    """A notebook of markdown (str) and figure (bytes: PNG) cells, for pages that are not lectures."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["title"] = title
    for cell in cells:
        if isinstance(cell, bytes):
            import base64

            code = nbformat.v4.new_code_cell("", outputs=[nbformat.v4.new_output(
                "display_data", data={"image/png": base64.b64encode(cell).decode(), "text/plain": title})])
            code.metadata["transient"] = {"remove_source": True}
            nb.cells.append(code)
        else:
            nb.cells.append(nbformat.v4.new_markdown_cell(cell))
    return nb


# ---------------------------------------------------------------------------------------------------
# pages and navigation

@dataclass(frozen=True)
class Page:
    key: str  # e.g. "00_quickstart"
    title: str
    href: str  # relative to the site's root


def _relative(href: str, depth: int) -> str:
    return "../" * depth + href


def nav_top(lectures: list[Page], exercises: list[Page], current: str, depth: int, slides_href: str | None) -> str:
    def link(page: Page, label: str) -> str:
        cls = " class='unigm-current'" if page.href == current else ""
        return f"<a{cls} href='{_relative(page.href, depth)}' title='{html.escape(page.title)}'>{label}</a>"

    parts = [f"<a class='unigm-home' href='{_relative('index.html', depth)}'>Unified Generative Models</a>",
             "<span class='unigm-group'>Lectures</span>"]
    parts += [link(p, p.key[:2]) for p in lectures]
    parts += ["<span class='unigm-group'>Exercises</span>"] + [link(p, p.key[:2]) for p in exercises]
    parts += [link(Page("map", "course map", "course-map.html"), "Course map"),
              link(Page("readme", "README", "readme.html"), "README")]
    if slides_href:
        parts.append(f"<a href='{_relative(slides_href, depth)}'>Slides of this lecture</a>")
    return "\n".join(parts)


def nav_bottom(sequence: list[Page], current: str, depth: int) -> str:
    hrefs = [p.href for p in sequence]
    if current not in hrefs:
        return ""
    i = hrefs.index(current)
    previous = (f"<a href='{_relative(sequence[i - 1].href, depth)}'>&larr; {html.escape(sequence[i - 1].title)}</a>"
                if i > 0 else "<span></span>")
    following = (f"<a href='{_relative(sequence[i + 1].href, depth)}'>{html.escape(sequence[i + 1].title)} &rarr;</a>"
                 if i + 1 < len(sequence) else "<span></span>")
    return previous + following


def export_page(nb, target: Path, depth: int, nav: tuple[str, str]) -> Path:
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="unigm_page", extra_template_basedirs=[str(TEMPLATES)],
                            mathjax_url=_relative(f"_static/mathjax/MathJax.js?config={MATHJAX_CONFIG}", depth))
    resources = {"unigm": {"static": _relative("_static", depth), "mathjax_config": MATHJAX_FONTS, "nav_top": nav[0], "nav_bottom": nav[1]},
                 "metadata": {"name": nb.metadata.get("title", target.stem)}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target


def export_slides(nb, target: Path, static: str) -> Path:
    """One reveal.js deck; `static` is the _static folder relative to the deck."""
    from nbconvert import SlidesExporter

    exporter = SlidesExporter(template_name="unigm_slides", extra_template_basedirs=[str(TEMPLATES)],
                              reveal_url_prefix=f"{static}/reveal", reveal_theme="white",
                              reveal_transition="none", reveal_scroll=True,
                              mathjax_url=f"{static}/mathjax/MathJax.js?config={MATHJAX_CONFIG}")
    resources = {"unigm": {"static": static, "mathjax_config": MATHJAX_FONTS}, "metadata": {"name": nb.metadata.get("title", target.stem)}}
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    return target


def readme_markdown(readme: Path) -> str:
    """README.md with its links to lecture and exercise sources pointed at their pages on the site."""
    text = readme.read_text(encoding="utf-8")
    return re.sub(r"\]\((lectures|exercises)/(\d\d_[A-Za-z0-9_]+)\.(?:py|ipynb)\)", r"](\1/\2.html)", text)


def course_map_page(bench_path: Path, lectures: dict[str, str] | None = None):
    """The course map (unigm.course.course_map) as a figure and a table of its edges with their evidence;
    `lectures` maps a lecture number ("02") to its page, linked where the evidence names the lecture."""
    lectures = lectures or {}

    def lecture(number: str, text: str) -> str:
        return f"[{text}]({lectures[number]})" if number in lectures else text

    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from . import course_map
    from .figures import use_course_style

    bench = json.loads(bench_path.read_text()) if bench_path.exists() else None
    graph = course_map.build(bench)
    use_course_style()
    fig, ax = plt.subplots(figsize=(15, 9))
    course_map.draw(graph, ax)
    ax.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    def cell(text: str) -> str:  # one table cell: no line breaks, and a pipe is not a column
        return text.replace("\n", " ").replace("||", "‖").replace("|", "\\|")

    rows = ["| from | to | what is equal | evidence |", "|---|---|---|---|"]
    for a, b, d in graph.edges(data=True):
        if d["checks"]:
            evidence = "derivation checks " + "; ".join(f"`{c}`" for c in d["checks"]) + \
                       f" ({lecture('02', 'lecture 02')})"
        else:
            evidence = "measured in " + lecture(d["lecture"][:2], f"lecture {d['lecture']}")
        rows.append(" | ".join(["", cell(graph.nodes[a]["label"]), cell(graph.nodes[b]["label"]), cell(d["relation"]),
                                cell(evidence), ""]).strip())
    intro = ("# The course map\n\nEvery family of the course is a view of one problem: carry noise to data. "
             "Each edge below is an exact equivalence, with its evidence: a machine-checked derivation of "
             "lecture 02 (solid blue) or a measurement in lecture 05 (dashed orange). Each family node shows "
             "its best model of the image benchmark (Fréchet distance on the 8x8 digits, lower is better) "
             "and its best bits/dim where the family has a likelihood.")
    return markdown_notebook("The course map", intro, buffer.getvalue(), "\n".join(rows))


# ---------------------------------------------------------------------------------------------------
# the two builds

def _lecture_pages(sources: list[Path], executed: Path):
    notebooks = {s.stem: prepare(load_executed(executed, s)) for s in sources}
    pages = [Page(s.stem, title_of(notebooks[s.stem]), f"lectures/{s.stem}.html") for s in sources]
    return notebooks, pages


def write_decks(notebooks: dict, pages: list[Page], out: Path, static: str) -> list[Path]:
    """One deck per lecture page in `out`, and an index.html listing them; `static` relative to `out`."""
    out.mkdir(parents=True, exist_ok=True)
    decks = [export_slides(notebooks[p.key], out / f"{p.key}.slides.html", static) for p in pages]
    items = "\n".join(f"<li><a href='{d.name}'>{html.escape(p.title)}</a></li>" for d, p in zip(decks, pages))
    (out / "index.html").write_text(f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Slides"
                                    f"</title><link rel='stylesheet' href='{static}/course.css'></head><body><main>"
                                    f"<h1>Unified Generative Models: slides</h1><ul>{items}</ul></main></body></html>",
                                    encoding="utf-8")
    return decks


def build_slides(executed: Path = Path("build/executed"), out: Path = Path("build/slides"),
                 sources: list[Path] | None = None) -> list[Path]:
    """The decks of every lecture in `out`, with their own _static/; returns the decks."""
    notebooks, pages = _lecture_pages(sources or lecture_sources(LECTURES), executed)
    copy_static(out)
    return write_decks(notebooks, pages, out, "_static")


def build_site(executed: Path = Path("build/executed"), out: Path = Path("build/site"), readme: Path = Path("README.md"),
               exercises: Path = Path("exercises"), bench: Path = Path("results/bench_images.json"),
               sources: list[Path] | None = None) -> Path:
    """The whole site in `out`; returns its index.html."""
    import jupytext

    sources = sources or lecture_sources(LECTURES)
    notebooks, lectures = _lecture_pages(sources, executed)
    exercise_sources = sorted(exercises.glob("[0-9][0-9]_*.py"))
    exercise_nbs = {p.stem: prepare(jupytext.read(p)) for p in exercise_sources}
    exercise_pages = [Page(p.stem, title_of(exercise_nbs[p.stem]), f"exercises/{p.stem}.html") for p in exercise_sources]
    if out.exists():
        shutil.rmtree(out)
    copy_static(out)
    write_decks(notebooks, lectures, out / "slides", "../_static")

    def nav(current: str, depth: int, sequence: list[Page], slides: str | None = None) -> tuple[str, str]:
        return nav_top(lectures, exercise_pages, current, depth, slides), nav_bottom(sequence, current, depth)

    for source, page in zip(sources, lectures):
        export_page(notebooks[source.stem], out / page.href, 1,
                    nav(page.href, 1, lectures, f"slides/{source.stem}.slides.html"))
    for page in exercise_pages:
        export_page(exercise_nbs[page.key], out / page.href, 1, nav(page.href, 1, exercise_pages))
    export_page(markdown_notebook("README", readme_markdown(readme)), out / "readme.html", 0, nav("readme.html", 0, []))
    export_page(course_map_page(bench, {p.key[:2]: p.href for p in lectures}), out / "course-map.html", 0, nav("course-map.html", 0, []))

    timings = {}
    for path in (executed / "timings.json", executed.parent / "timings.json"):
        if path.exists():
            timings = json.loads(path.read_text())
            break
    exercise_by_number = {p.key[:2]: p for p in exercise_pages}
    rows = ["| lecture | run time here (quick profile) | budget | slides | exercise |", "|---|---|---|---|---|"]
    for source, page in zip(sources, lectures):
        number = page.key[:2]
        seconds = timings.get(source.stem, notebooks[source.stem].metadata.get("unigm", {}).get("seconds"))
        exercise = exercise_by_number.get(number)
        rows.append(f"| [{page.title}]({page.href}) | {f'{seconds:.0f} s' if seconds else 'n/a'} | "
                    f"{BUDGET_SECONDS.get(number, 'n/a')} s | [slides](slides/{source.stem}.slides.html) | "
                    + (f"[{exercise.title}]({exercise.href})" if exercise else "none") + " |")
    front = ("# Unified Generative Models\n\nAn executable course on deep generative models: VAEs, flows, GANs, "
             "diffusion, autoregressive and world models as views of one problem, proved equivalent with sympy, "
             "trained and measured side by side. These pages are the executed lectures (every number on them was "
             "computed when they were built), the exercises as students get them, the slides and the course map. "
             "To run and change the code, clone the repository and use `make lab`.\n\n" + "\n".join(rows) +
             "\n\nAlso: [the course map](course-map.html), the [README](readme.html) (installation, profiles, "
             "benchmarks, teaching from the course) and [all slides](slides/index.html).")
    return export_page(markdown_notebook("Unified Generative Models", front), out / "index.html", 0,
                       nav("index.html", 0, []))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unigm.course.site", description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["site", "slides"])
    parser.add_argument("--executed", type=Path, default=Path("build/executed"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        if args.what == "site":
            index = build_site(args.executed, args.out or Path("build/site"))
            print(f"site: {index}")
        else:
            decks = build_slides(args.executed, args.out or Path("build/slides"))
            print("slides: " + ", ".join(str(d) for d in decks))
    except SiteError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
