"""The code blocks of README.md and docs/*.md, and what checking each means (tests/test_docs.py).

- ```yaml: parsed. One whose leading comments name a file, `# conf/GROUP/NAME.yaml` (after its `# @package`
  line, which must come first), is copied there in a copy of conf/ and composed as `GROUP=NAME`, as Hydra
  loads it (jsmp.run.groupfiles, then jsmp.run.cli.check_compose): a misplaced header or a bad default fails.
- ```bash / sh / shell / console, and unlabelled blocks whose first command is one of ours (a `$ ` prompt
  marks the commands of a transcript): each command is checked, not run. `python train.py|tune.py ARGS`
  and `jsmp train|tune ARGS` (also under torchrun or srun, and `make train|tune ARGS="..."`) go through
  Hydra's parser, the sweeper's command-line check and a compose against that copy of conf/, so a doc's
  commands see its own YAML files; `jsmp CMD ...` and `python -m jsmp.X ...` through that command's own
  argparse parser (stopped once it has parsed); `make TARGET` must be a Makefile target; `python -c CODE`
  and ```python blocks compile and their imports resolve. `cd`, `export`, `read` only set the shell's state;
  `eval $(CMD)` is CMD.
  `$VAR` reads as 1; `[...]` around options marks them optional and is dropped; `+best=PATH` is dropped.
- Anything else fails unless `<!-- doctest: skip (why) -->` comes right before the block (the whole block
  is skipped) or `<!-- doctest: skip PROG[,PROG] (why) -->` (commands of those programs are skipped).
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/*.md"]
SHELL = {"bash", "sh", "shell", "console"}
FENCE = re.compile(r"^(\s*)```\s*([\w+-]*)\s*$")
MARKER = re.compile(r"^<!--\s*doctest:\s*skip\s*([\w.,-]*)\s*\((.+)\)\s*-->$")
CLAIM = re.compile(r"^#\s*(conf/[\w/.-]+\.yaml)\s*$")
PYTHON = re.compile(r"^python(3(\.\d+)?)?$")
LAUNCHERS = {"torchrun", "srun"}
SHELL_STATE = {"cd", "export", "read", "eval"}  # (eval: of a command substitution, checked itself)
OPERATORS = {"&&", "||", ";", "|"}


@dataclass
class Block:
    """A fenced code block: `doc` (relative path), `line` (its fence's, 1-based), `lang`, `text` (dedented),
    `skip` (the marker's reason), `skip_programs` (the marker's programs; empty: the whole block)."""

    doc: str
    line: int
    lang: str
    text: str
    skip: str | None = None
    skip_programs: set[str] = field(default_factory=set)

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"


def doc_files(root: Path = ROOT) -> list[Path]:
    return sorted({p for pattern in DOCS for p in root.glob(pattern)})


def blocks(path: Path, root: Path = ROOT) -> list[Block]:
    """The fenced blocks of the Markdown file `path`; a malformed doctest marker is a ValueError."""
    lines = path.read_text().splitlines()
    found, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, start = len(m[1]), i
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            i += 1
        text = "\n".join(line[indent:] for line in lines[start + 1:i]) + "\n"
        block = Block(str(path.relative_to(root)), start + 1, m[2].lower(), text)
        before = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
        if before.startswith("<!--") and "doctest" in before:
            if not (marker := MARKER.match(before)):
                raise ValueError(f"{block.id}: malformed marker {before!r}; expected <!-- doctest: skip [PROG] (why) -->")
            block.skip, block.skip_programs = marker[2], {p for p in marker[1].split(",") if p}
        found.append(block)
        i += 1
    return found


def all_blocks(root: Path = ROOT) -> list[Block]:
    return [b for path in doc_files(root) for b in blocks(path, root)]


def claimed_file(text: str) -> str | None:
    """`conf/GROUP/NAME.yaml` that a YAML block's leading comment lines say it is, if any."""
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            return None
        if m := CLAIM.match(line.strip()):
            return m[1]
    return None


def commands(block: Block) -> list[tuple[int, list[str]]]:
    """(line in the doc, argv) of each command of a shell block: continuation lines joined, comments, a
    transcript's output lines and `[`/`]` dropped, `$VAR` read as 1, split at `&&`, `||`, `;` and `|`; a command
    substitution `$(CMD)` is CMD, before the command it is in."""
    lines = block.text.splitlines()
    transcript = any(line.startswith("$ ") for line in lines)
    found, i = [], 0
    while i < len(lines):
        first, text = i, lines[i]
        while text.endswith("\\") and i + 1 < len(lines):
            i += 1
            text = text[:-1] + " " + lines[i]
        i += 1
        if transcript and not text.startswith("$ "):
            continue
        text = re.sub(r"\$\{?\w+\}?", "1", text.removeprefix("$ "))
        for inner in re.findall(r"\$\(([^()]*)\)", text):  # (a command substitution: a command of its own)
            found.append((block.line + 1 + first, optional_marks_dropped(shlex.split(inner, comments=True))))
        tokens = optional_marks_dropped(shlex.split(re.sub(r"\$\([^()]*\)", "1", text), comments=True))
        argv: list[str] = []
        for token in [*tokens, ";"]:
            if token in OPERATORS or token.endswith(";"):
                argv += [token.removesuffix(";")] if token not in OPERATORS else []
                found += [(block.line + 1 + first, [a for a in argv if a])] if any(argv) else []
                argv = []
            elif token:
                argv.append(token)
    return found


def optional_marks_dropped(tokens: list[str]) -> list[str]:
    """`tokens` with the brackets of each optional group of options (`[--batch]`, `[--steps 10 --lr 5e-5]`) dropped;
    a value's brackets (`data.targets=[a,b]`) are kept."""
    out, inside = [], False
    for token in tokens:
        if token.startswith("[-"):
            token, inside = token[1:], True
        if inside and token.endswith("]"):
            token, inside = token[:-1], False
        out.append(token)
    return out


def program(argv: list[str]) -> tuple[str, list[str]]:
    """(program name, its arguments) of a command, environment assignments (`X=Y cmd`) dropped."""
    while argv and re.match(r"^\w+=", argv[0]):
        argv = argv[1:]
    return (Path(argv[0]).name, argv[1:]) if argv else ("", [])


def is_shell(block: Block) -> bool:
    """A shell block: labelled so, or unlabelled with a `$ ` prompt or a first command that is one of ours."""
    if block.lang in SHELL:
        return True
    if block.lang or not (cmds := commands_or_none(block)):
        return False
    return any(line.startswith("$ ") for line in block.text.splitlines()) or \
        bool(PYTHON.match(program(cmds[0][1])[0])) or program(cmds[0][1])[0] in {"jsmp", "make"}


def commands_or_none(block: Block) -> list[tuple[int, list[str]]] | None:
    try:
        return commands(block)
    except ValueError:  # (not shell: unbalanced quotes)
        return None


def check_python(code: str) -> str | None:
    """Why `code` does not compile, or a name it imports does not exist; None when fine."""
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return f"does not compile: {e}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [(node.module, a.name) for a in node.names]
        else:
            continue
        for module, name in names:
            try:
                mod = importlib.import_module(module)
            except ImportError as e:
                return f"import {module}: {e}"
            if name not in (None, "*") and not hasattr(mod, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    return f"{module} has no {name}"
    return None


def make_targets(makefile: Path = ROOT / "Makefile") -> dict[str, list[str]]:
    """Each Makefile target and its recipe lines."""
    targets: dict[str, list[str]] = {}
    current = None
    for line in makefile.read_text().splitlines():
        if m := re.match(r"^([\w.-]+)\s*:(?!=)", line):
            current = targets.setdefault(m[1], [])
        elif line.startswith("\t") and current is not None:
            current.append(line.strip())
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


def make_commands(args: list[str], targets: dict[str, list[str]]) -> tuple[list[str], list[list[str]]]:
    """(unknown targets, commands the recipes run with the variables given) of `make ARGS`: a recipe line
    `$(BIN)/python SCRIPT.py $(VAR)` or `$(BIN)/python -m jsmp.X $(VAR)` with VAR=VALUE given becomes
    `python SCRIPT.py VALUE` (`python -m jsmp.X VALUE`)."""
    variables = dict(a.split("=", 1) for a in args if "=" in a)
    names = [a for a in args if "=" not in a and not a.startswith("-")]
    unknown = [n for n in names if n not in targets]
    runs = []
    for name in names:
        for recipe in targets.get(name, []):
            m = re.match(r"^\$\(BIN\)/(python (?:\S+\.py|-m jsmp\S*) )\$\((\w+)\)\s*$", recipe)
            if m and m[2] in variables:
                runs.append(shlex.split(m[1]) + shlex.split(variables[m[2]]))
    return unknown, runs
