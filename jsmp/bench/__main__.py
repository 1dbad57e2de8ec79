"""`python -m jsmp.bench NAME [options]` runs jsmp/bench/NAME.py's `main(argv)`."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import jsmp.bench
from jsmp.errors import exit_on_user_error

NOT_BENCHMARKS = {"common"}


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(jsmp.bench.__path__) if m.name not in NOT_BENCHMARKS | {"__main__"})


@exit_on_user_error
def main(argv: list[str]) -> int:
    names = available()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m jsmp.bench NAME [options]   (NAME --help for its options)")
        print("benchmarks: " + (", ".join(names) or "(none yet)"))
        return 0
    if argv[0] not in names:
        print(f"error: unknown benchmark {argv[0]!r}; expected one of {names}", file=sys.stderr)
        return 2
    return importlib.import_module(f"jsmp.bench.{argv[0]}").main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
