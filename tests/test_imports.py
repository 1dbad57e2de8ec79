"""Imports go one way, in the order the data flows (STAGES: no module imports a later stage), and
jsmp and the sweeper plugin (hydra_plugins/) stand alone: neither imports the other (jsmp's command
line reaches the plugin through Hydra's registries: jsmp/run/cli.py `sweeper()`), and importing the
plugin leaves jsmp, and the allocator variable its import sets, out of the process."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from jsmp.allocator import ENV as ALLOCATOR_ENV

PLUGIN = "hydra_plugins"

# jsmp's stages in the order the data flows: a module may import its own stage and earlier ones.
# Each entry names a package or module; a module's stage is its longest listed name.
STAGES = [
    ("base", ["jsmp", "jsmp.errors", "jsmp.processes", "jsmp.files", "jsmp.allocator", "jsmp.metrics", "jsmp.checkpoint"]),
    ("schema", ["jsmp.data.schema"]),  # the competitions' column layouts and value limits
    ("store", ["jsmp.store"]),  # the on-disk format: shards, side columns, manifest
    ("inputs", ["jsmp.inputs"]),  # the input rules, once each: windows, lags, fill, the online state, InputSpec
    ("data", ["jsmp.data"]),  # sources read and checked, ingested or synthesised into stores
    ("batches", ["jsmp.batches"]),  # a store's rows as model inputs (fill, lags, windows, splits)
    ("models", ["jsmp.models"]),
    ("predict", ["jsmp.predict"]),  # a run's model serving rows
    ("evaluate", ["jsmp.evaluate"]),  # runs scored on labelled rows
    ("run", ["jsmp.run"]),  # the training recipe and the Hydra command lines
    ("bench", ["jsmp.bench"]),
    ("kaggle", ["jsmp.kaggle"]),
    ("commands", ["jsmp.cli", "jsmp.__main__"]),  # `jsmp COMMAND`: each command's module, imported by name
]
STAGE = {name: i for i, (_, names) in enumerate(STAGES) for name in names}
# the upward imports still there, each with what removes it (none left: issue 25 item 3 gave the store a cache
# registry and one verify); an entry gone, or an import not listed, fails the test
KNOWN_UPWARD: set[str] = set()


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, name) of every import in the file at `path`: `import a.b` (a.b), `from a.b import c`
    (a.b.c, a module or a name in a.b; relative ones resolved against the file's package, its
    folder under `root`) and
    `importlib.import_module("a.b")` / `__import__("a.b")` with a literal name, at any depth
    (inside functions too)."""
    package = path.relative_to(root).parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def imports_of(package: str, forbidden: str, root: Path = ROOT) -> list[str]:
    """`path:line: module` for each import of `forbidden` (or a submodule) in the .py files under `root/package`."""
    files = sorted((root / package).rglob("*.py"))
    assert files, f"no .py files under {package}"
    return [f"{p.relative_to(root)}:{line}: {mod}" for p in files for line, mod in imported_modules(p, root)
            if mod == forbidden or mod.startswith(forbidden + ".")]


def module_name(path: Path, root: Path = ROOT) -> str:
    """`jsmp/data/ingest.py` -> jsmp.data.ingest; a package's `__init__.py` -> the package."""
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def listed(name: str) -> str:
    """The longest prefix of module (or imported name) `name` that STAGES lists ("" for none)."""
    while name and name not in STAGE:
        name = name.rpartition(".")[0]
    return name


def stage_of(name: str) -> int:
    """The index in STAGES of module (or imported name) `name`."""
    return STAGE[listed(name)]


def upward_imports(root: Path = ROOT) -> set[str]:
    """`path: name (stage -> stage)` for each import of a later stage in the .py files under `root/jsmp`."""
    found = set()
    for path in sorted((root / "jsmp").rglob("*.py")):
        own = stage_of(module_name(path, root))
        for _, name in imported_modules(path, root):
            if name.split(".")[0] == "jsmp" and (other := stage_of(name)) > own:
                found.add(f"{path.relative_to(root)}: {name} ({STAGES[own][0]} -> {STAGES[other][0]})")
    return found


def test_every_module_has_a_stage():
    # (the bare `jsmp` stands for the package's __init__.py and what it defines: a new top-level module needs a line)
    modules = [module_name(p) for p in sorted((ROOT / "jsmp").rglob("*.py"))]
    assert [m for m in modules if m != "jsmp" and listed(m) == "jsmp"] == []


def test_no_module_imports_a_later_stage():
    assert upward_imports() == KNOWN_UPWARD


def test_the_stage_check_sees_an_upward_import(tmp_path):
    (tmp_path / "jsmp" / "data").mkdir(parents=True)
    (tmp_path / "jsmp" / "data" / "x.py").write_text(
        "from jsmp.store.store import Store\nfrom jsmp import files\nfrom . import schema\n"
        "def late():\n    from jsmp.batches import fill\n    from ..evaluate.rows import choose_rows\n")
    (tmp_path / "jsmp" / "store").mkdir()
    (tmp_path / "jsmp" / "store" / "y.py").write_text("import jsmp.cli\n")
    assert upward_imports(tmp_path) == {"jsmp/data/x.py: jsmp.batches.fill (data -> batches)",
                                        "jsmp/data/x.py: jsmp.evaluate.rows.choose_rows (data -> evaluate)",
                                        "jsmp/store/y.py: jsmp.cli (store -> commands)"}


@pytest.mark.parametrize("package, forbidden", [("jsmp", PLUGIN), (PLUGIN, "jsmp")])
def test_jsmp_and_the_plugin_do_not_import_each_other(package, forbidden):
    assert imports_of(package, forbidden) == []


def test_the_import_check_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "hydra_plugins" / "x"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text(
        "import os\nimport jsmp.files as f\nfrom jsmp import errors\n"
        "def late():\n    from jsmp.processes import pid_alive\n    import importlib\n"
        "    importlib.import_module('jsmp.allocator')\n    return __import__('jsmp')\n"
        "from . import sibling\nfrom .. import up\nimport jsmpx\n")
    assert imports_of(PLUGIN, "jsmp", root=tmp_path) == [
        "hydra_plugins/x/mod.py:2: jsmp.files", "hydra_plugins/x/mod.py:3: jsmp.errors",
        "hydra_plugins/x/mod.py:5: jsmp.processes.pid_alive", "hydra_plugins/x/mod.py:7: jsmp.allocator",
        "hydra_plugins/x/mod.py:8: jsmp",
    ]
    assert [m for _, m in imported_modules(pkg / "mod.py", tmp_path)][-3:] == ["hydra_plugins.x.sibling", "hydra_plugins.up", "jsmpx"]


def test_importing_the_sweeper_leaves_jsmp_and_its_allocator_variable_out():
    code = ("import json, os, sys\nimport hydra_plugins.jsmp_optuna_sweeper.sweeper\n"
            "import hydra_plugins.jsmp_optuna_sweeper._loop\n"
            f"print(json.dumps([sorted(m for m in sys.modules if m.split('.')[0] == 'jsmp'), "
            f"os.environ.get({ALLOCATOR_ENV!r})]))")
    env = {k: v for k, v in os.environ.items() if k != ALLOCATOR_ENV}
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120, check=False)
    assert p.returncode == 0, p.stderr[-3000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == [[], None]
