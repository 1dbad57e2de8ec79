"""Atomic writes of the files the sweeper leaves (best.yaml, the plots, a killed trial's metrics.json).

The plugin's own few lines, not jsmp.files: the plugin imports nothing from jsmp (importing jsmp
runs its package setup, which sets a torch allocator variable; tests/test_imports.py), so any
Hydra app can use it. The temp name is jsmp.files' (`.NAME.tmp-<pid>-<8 hex>`), so the next jsmp
write of the same file clears a temp this process left when killed.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(dst: Path) -> Iterator[Path]:
    """Yield a temp path beside `dst` to write into; renamed onto `dst` when the block ends,
    removed when it raises. (The temp's name does not end in `dst`'s suffix: name the format.)"""
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(dst: Path, text: str) -> None:
    """Write `text` to `dst` through a temp file and a rename."""
    with atomic_path(dst) as tmp:
        tmp.write_text(text)
