"""The library's layers: models need only torch, numpy and POT, and imports only go downwards.

A new module must be placed in LAYERS below; a module missing from it fails the tests.
"""
import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "lib" / "unigm"

# Lowest first. A module may import from its own layer or a lower one, never from a higher one.
# A module belongs to the layer of its longest matching prefix (unigm.flows covers unigm.flows.cnf).
LAYERS = (
    ("ground floor", ("unigm.base", "unigm.tensors", "unigm.schedules", "unigm.paths", "unigm.densities",
                      "unigm.samplers", "unigm.nets", "unigm.data", "unigm.runtime", "unigm.registry")),
    ("models", ("unigm.vae", "unigm.flows", "unigm.gan", "unigm.diffusion", "unigm.autoregressive",
                "unigm.world", "unigm.frontier", "unigm.zoo")),
    ("train", ("unigm.train",)),
    ("measure", ("unigm.metrics", "unigm.judge", "unigm.bench", "unigm.bench_samplers", "unigm.bench_images")),
    ("course", ("unigm.course",)),
)
# The model families are siblings: none imports another one, nor the zoo (which imports them all).
FAMILIES = ("unigm.vae", "unigm.flows", "unigm.gan", "unigm.diffusion", "unigm.autoregressive", "unigm.world")
# `unigm` itself (__init__.py) runs before every submodule, so it sits on the ground floor.
TOP = "unigm"

# Everything outside unigm.course imports only the standard library, unigm and these
# (import name -> distribution, which must be a core dependency in pyproject.toml).
CORE_IMPORTS = {"torch": "torch", "numpy": "numpy", "ot": "POT", "tqdm": "tqdm", "safetensors": "safetensors",
                "sklearn": "scikit-learn"}
# What only the course tooling may import. scipy is not in this list: POT imports it, so the models
# cannot run without it; test_models_import_only_core_dependencies keeps it out of unigm's own code.
COURSE_ONLY = ("sympy", "matplotlib", "jupytext", "nbclient", "nbconvert", "nbformat", "IPython", "ipywidgets",
               "ipykernel", "unigm.course")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def library_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in p.parts}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def is_course(name: str) -> bool:
    return within(name, "unigm.course")


def layer_of(name: str) -> tuple[int, str] | None:
    """(index in LAYERS, the matching prefix) by the longest prefix, or None if no layer holds it."""
    if name == TOP:
        return 0, TOP
    matches = [(len(prefix), index, prefix) for index, (_, prefixes) in enumerate(LAYERS)
               for prefix in prefixes if within(name, prefix)]
    return max(matches)[1:] if matches else None


def imports_of(name: str, path: Path, modules) -> list[tuple[int, str]]:
    """(line, imported name) for every import in the file, at top level or inside functions.
    Relative imports are resolved; `from pkg import sub` names the submodule where there is one."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[:len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((node.lineno, sub if sub in modules or base == TOP else base))
    return list(dict.fromkeys(found))  # `from m import a, b` names m once


def test_models_import_without_course_tooling():
    """Every module outside unigm.course imports in a Python where the notebook machinery is missing."""
    script = f"""
import sys
for name in {COURSE_ONLY!r}:
    sys.modules[name] = None  # `import name` now raises ImportError
import importlib, pkgutil, unigm

def skip_course(name):
    if not name.startswith("unigm.course"):
        raise ImportError(f"walking the packages: importing {{name}} failed")

for info in pkgutil.walk_packages(unigm.__path__, "unigm.", onerror=skip_course):
    if not info.name.startswith("unigm.course") and not info.name.endswith(".__main__"):
        importlib.import_module(info.name)
        print(info.name)
"""
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=600)
    failed = run.returncode != 0
    assert not failed, "a module outside unigm.course needs the course tooling (or fails to import):\n" + run.stderr[-3000:]
    expected = {name for name in library_modules() if not is_course(name) and not name.endswith(".__main__")}
    assert expected - {TOP} <= set(run.stdout.split()), "pkgutil.walk_packages missed some modules"


def test_models_import_only_core_dependencies():
    """Outside unigm.course only the standard library and the core dependencies are imported
    (scipy too would pass the test above, because POT loads it)."""
    core = {dep.split("=")[0].split("<")[0].split(">")[0].strip().lower()
            for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    assert {dist.lower() for dist in CORE_IMPORTS.values()} <= core, "CORE_IMPORTS names a non-core dependency"
    modules = library_modules()
    problems = []
    for name, path in modules.items():
        if is_course(name):
            continue
        for line, target in imports_of(name, path, modules):
            top = target.split(".")[0]
            if top != TOP and top not in sys.stdlib_module_names and top not in CORE_IMPORTS:
                problems.append(f"{path.relative_to(ROOT)}:{line} imports {target}: not a core dependency "
                                f"({', '.join(CORE_IMPORTS)}); course-only code belongs in unigm.course")
    assert not problems, "\n".join(problems)


def test_no_module_imports_upward():
    modules = library_modules()
    names = [layer for layer, _ in LAYERS]
    problems = []
    for name, path in modules.items():
        where = f"{path.relative_to(ROOT)} ({name})"
        own = layer_of(name)
        if own is None:
            problems.append(f"{where} is in no layer: add it to LAYERS in tests/test_layering.py")
            continue
        for line, target in imports_of(name, path, modules):
            if not within(target, TOP) or target == TOP:
                continue
            theirs = layer_of(target)
            if target not in modules:
                problems.append(f"{where}:{line} imports {target}, which does not exist")
            elif theirs is None:
                problems.append(f"{where}:{line} imports {target}, which is in no layer: add it to LAYERS")
            elif theirs[0] > own[0]:
                problems.append(f"{where}:{line} imports {target} upward: {names[own[0]]} -> {names[theirs[0]]}")
            elif (own[1] in FAMILIES and theirs[0] == own[0] and theirs[1] != own[1]):
                problems.append(f"{where}:{line} imports {target}: model families are siblings and import "
                                f"neither each other nor the zoo; move shared code to the ground floor")
    assert not problems, "\n".join(problems)


def test_layer_table_is_consistent():
    """The rule is only as good as the table: no prefix twice, families and TOP where they belong."""
    prefixes = [prefix for _, layer in LAYERS for prefix in layer]
    assert len(prefixes) == len(set(prefixes))
    models = dict(LAYERS)["models"]
    assert set(FAMILIES) <= set(models) and "unigm.zoo" not in FAMILIES
    assert layer_of("unigm.flows.cnf") == (1, "unigm.flows") and layer_of("unigm.flowsy") is None
    assert layer_of(TOP) == (0, TOP) and layer_of("unigm.course.grading.worker") == (4, "unigm.course")
