"""jsmp and the sweeper plugin (hydra_plugins/) stand alone: neither imports the other, and
importing the plugin leaves jsmp, and the allocator variable its import sets, out of the process."""

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
# the command-line glue (jsmp train|tune, train.py, tune.py) checks overrides with the plugin's parser before
# Hydra runs (one-line errors, a password in a bad override hidden): the one place jsmp names the plugin
GLUE = "jsmp/run/cli.py"


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, module) of every import in the file at `path`: `import a.b`, `from a.b import c`
    (relative ones resolved against the file's package, its folder under `root`) and
    `importlib.import_module("a.b")` / `__import__("a.b")` with a literal name, at any depth
    (inside functions too)."""
    package = path.relative_to(root).parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            found.append((node.lineno, ".".join(p for p in (base, node.module or "") if p)))
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


@pytest.mark.parametrize("package, forbidden", [("jsmp", PLUGIN), (PLUGIN, "jsmp")])
def test_jsmp_and_the_plugin_do_not_import_each_other(package, forbidden):
    found = imports_of(package, forbidden)
    if package == "jsmp":  # the glue imports the plugin's override checks and job reports, inside its functions, and nothing else
        glue = [f for f in found if f.startswith(GLUE + ":")]
        assert glue and all(f.endswith((".space", ".errors", ".jobs")) for f in glue), glue
        found = [f for f in found if f not in glue]
    assert found == []


def test_the_import_check_sees_every_kind_of_import(tmp_path):
    pkg = tmp_path / "hydra_plugins" / "x"
    pkg.mkdir(parents=True)
    (pkg / "mod.py").write_text(
        "import os\nimport jsmp.files as f\nfrom jsmp import errors\n"
        "def late():\n    from jsmp.processes import pid_alive\n    import importlib\n"
        "    importlib.import_module('jsmp.allocator')\n    return __import__('jsmp')\n"
        "from . import sibling\nfrom .. import up\nimport jsmpx\n")
    assert imports_of(PLUGIN, "jsmp", root=tmp_path) == [
        "hydra_plugins/x/mod.py:2: jsmp.files", "hydra_plugins/x/mod.py:3: jsmp",
        "hydra_plugins/x/mod.py:5: jsmp.processes", "hydra_plugins/x/mod.py:7: jsmp.allocator",
        "hydra_plugins/x/mod.py:8: jsmp",
    ]
    assert [m for _, m in imported_modules(pkg / "mod.py", tmp_path)][-3:] == ["hydra_plugins.x", "hydra_plugins", "jsmpx"]


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
