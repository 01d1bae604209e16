"""`unigm` command line: notebooks from their jupytext sources, the headless course run, MNIST.

    unigm notebooks [--out DIR]      lectures/*.py -> .ipynb (next to the sources by default)
    unigm course [--out build]       execute every lecture, write executed .ipynb + .html and
                                     build/timings.json with each notebook's wall time
    unigm site [--out build/site]    the static site of the executed lectures (unigm.course.site)
    unigm slides [--out build/slides] reveal.js slides of every lecture (unigm.course.site)
    unigm download-mnist             fetch MNIST into the data cache (needs network)
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

LECTURES = Path("lectures")


def lecture_sources(folder: Path = LECTURES) -> list[Path]:
    sources = sorted(p for p in folder.glob("[0-9][0-9]_*.py"))
    if not sources:
        raise FileNotFoundError(f"no lecture sources (NN_name.py) in {folder.resolve()}; run from the repository root")
    return sources


def source_digest(source: Path) -> str:
    """The sha256 of a lecture's jupytext source: an executed notebook carries it in
    metadata["unigm"]["source_sha256"], so the site can tell a stale one from a fresh one."""
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()


def read_source(source: Path):
    """A lecture's jupytext source as a notebook, stamped with its source file and digest."""
    import jupytext

    notebook = jupytext.read(source)
    notebook.metadata["unigm"] = {"source": Path(source).as_posix(), "source_sha256": source_digest(source)}
    return notebook


def to_notebook(source: Path, out_dir: Path | None = None) -> Path:
    """Convert one jupytext percent script to .ipynb (no outputs); return the notebook path."""
    import jupytext

    notebook = read_source(source)
    target = (out_dir or source.parent) / (source.stem + ".ipynb")
    target.parent.mkdir(parents=True, exist_ok=True)
    jupytext.write(notebook, target)
    return target


def execute(source: Path, out_dir: Path, timeout: int = 1800) -> float:
    """Execute a lecture headless; write the executed notebook and an HTML copy. Returns seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    notebook = read_source(source)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(source.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    notebook.metadata["unigm"].update(seconds=round(seconds, 2), failed_cells=[], executed_by="nbclient")
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out_dir / (source.stem + ".ipynb"))
    html, _ = HTMLExporter().from_notebook_node(notebook)
    (out_dir / (source.stem + ".html")).write_text(html, encoding="utf-8")
    return seconds


def course(sources: list[Path], out: Path) -> dict[str, float]:
    executed = out / "executed"
    timings: dict[str, float] = {}
    timings_path = out / "timings.json"
    for source in sources:
        print(f"executing {source} ...", flush=True)
        timings[source.stem] = round(execute(source, executed), 2)
        print(f"  {timings[source.stem]:.1f} s -> {executed / (source.stem + '.html')}", flush=True)
        timings_path.write_text(json.dumps(timings, indent=2))  # partial results survive a failure
    print(f"total {sum(timings.values()):.1f} s; timings in {timings_path}")
    return timings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="unigm", description="Unified Generative Models course tools")
    sub = parser.add_subparsers(dest="command", required=True)
    nb = sub.add_parser("notebooks", help="convert lectures/*.py to .ipynb")
    nb.add_argument("sources", nargs="*", type=Path)
    nb.add_argument("--out", type=Path, default=None, help="folder for the notebooks (default: beside the sources)")
    co = sub.add_parser("course", help="execute every lecture into build/executed with HTML and timings")
    co.add_argument("sources", nargs="*", type=Path)
    co.add_argument("--out", type=Path, default=Path("build"))
    for name, what in (("site", "the static site of the executed lectures"), ("slides", "reveal.js slides")):
        built = sub.add_parser(name, help=f"{what}, from build/executed (make course or make test)")
        built.add_argument("--executed", type=Path, default=Path("build/executed"))
        built.add_argument("--out", type=Path, default=None)
    sub.add_parser("download-mnist", help="download MNIST into the data cache ($UNIGM_DATA or ~/.cache/unigm)")
    args = parser.parse_args(argv)

    if args.command == "notebooks":
        for source in args.sources or lecture_sources():
            print(to_notebook(source, args.out))
    elif args.command == "course":
        course(args.sources or lecture_sources(), args.out)
    elif args.command in ("site", "slides"):
        from . import site

        return site.main([args.command, "--executed", str(args.executed)] + (["--out", str(args.out)] if args.out else []))
    elif args.command == "download-mnist":
        from ..data import download_mnist

        try:
            print(f"MNIST is in {download_mnist()}")
        except ConnectionError as err:
            print(err, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
