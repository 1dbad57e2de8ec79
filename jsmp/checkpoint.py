"""Checkpoint files: written whole or not at all with a recorded SHA-256, verified wherever loaded.

- `CheckpointFiles`: the Lightning CheckpointIO plugin every training run uses
  (jsmp/run/training.py). A checkpoint is serialized in memory, written to a hidden temp sibling
  in its own directory (jsmp.files.atomic_path), fsynced and renamed onto its name; then its
  checksum goes to the sidecar `NAME.ckpt.sha256` in `sha256sum` format (`<hex>  NAME.ckpt`, so
  `sha256sum -c` checks it). On any error (disk full...) the temp is removed and the final name
  keeps the previous checkpoint or stays absent. Removing a checkpoint removes its sidecar.
- `read_verified(path)` / `load(path)`: the one check every loader goes through (jsmp.evaluate,
  jsmp.predict and Predictor, a resume's pre-check and Lightning's own load of `ckpt_path`): an
  empty file, or bytes whose SHA-256 differs from the sidecar's, is a one-line UserError naming
  the file. A checkpoint without a sidecar (written before jsmp recorded checksums) loads as
  before, with a one-line warning on stderr.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from jsmp.errors import UserError
from jsmp.files import atomic_path, disk_full_error

SIDECAR = ".sha256"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)\n?$")
_WARNED: set[str] = set()  # checkpoints without a sidecar already warned about in this process


def sidecar(path: str | os.PathLike) -> Path:
    """The checksum file of checkpoint `path`: `PATH.sha256`."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR)


def _write_synced(path: Path, data: bytes | memoryview) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: str | os.PathLike, data: bytes | memoryview) -> None:
    """Write the serialized checkpoint `data` to `path`, then its sidecar with the SHA-256 of `data`.

    Each file goes through a temp sibling, fsync and rename. The old sidecar is removed before the
    new checkpoint is renamed in, so no moment pairs a checkpoint with another one's checksum (a
    process killed between the two renames leaves a whole checkpoint without a sidecar).
    A failed write raises a one-line UserError naming the file (disk full: jsmp.files.disk_full_error).
    """
    path = Path(path)
    digest = hashlib.sha256(data).hexdigest()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            _write_synced(tmp, data)
            sidecar(path).unlink(missing_ok=True)
        with atomic_path(sidecar(path)) as tmp:
            _write_synced(tmp, f"{digest}  {path.name}\n".encode())
        _sync_dir(path.parent)
    except OSError as e:
        if (full := disk_full_error(e, f"checkpoint {path}", "it", path.parent, len(data))) is not None:
            raise UserError(f"{full} with ckpt_path=last (or ckpt_path=PATH, a checkpoint in that directory); "
                            f"no partial file was left") from None
        raise UserError(f"checkpoint {path}: cannot write it ({e.strerror or e}); no partial file was left") from None


def read_verified(path: str | os.PathLike) -> bytes:
    """The bytes of checkpoint `path` after checking them: not empty, and equal in SHA-256 to its
    sidecar when it has one (else a one-time warning on stderr). One-line UserError naming the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise UserError(f"{path}: cannot read the checkpoint ({e.strerror or e})") from None
    if not data:
        raise UserError(f"{path}: empty file (0 bytes), not a checkpoint (a save or copy that did not finish); "
                        f"restore it or retrain")
    side = sidecar(path)
    try:
        text = side.read_text()
    except FileNotFoundError:
        if str(path) not in _WARNED:
            _WARNED.add(str(path))
            print(f"warning: {path}: no recorded checksum ({side.name}; written before jsmp recorded them); "
                  f"loaded unverified", file=sys.stderr, flush=True)
        return data
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{side}: cannot read the recorded checksum ({getattr(e, 'strerror', None) or e})") from None
    m = _LINE.match(text)
    if m is None:
        raise UserError(f"{side}: not a checksum line ('<64 hex digits>  {path.name}'); the file is damaged: "
                        f"restore it, or delete it to load {path.name} unverified")
    if hashlib.sha256(data).hexdigest() != m.group(1):
        raise UserError(f"{path}: checksum mismatch (recorded in {side.name}): the file is damaged; "
                        f"retrain or restore it")
    return data


def load(path: str | os.PathLike, map_location: Any = "cpu") -> dict:
    """The checkpoint at `path`, verified (read_verified) and loaded weights-only: tensors and plain
    containers; one holding other objects is refused rather than run its unpickling code."""
    data = read_verified(path)
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 (any failure to parse these bytes: garbled zip, not a torch file, a refused global)
        lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
        if isinstance(e, pickle.UnpicklingError) and (found := [line for line in lines if "GLOBAL" in line]):
            raise UserError(f"{path}: refused: it holds objects other than weights and plain values, which could run "
                            f"arbitrary code when loaded ({found[0][:200]})") from None
        detail = next((line for line in lines if line.startswith("Unsupported operand")), lines[0]).split(". ")[0]
        raise UserError(f"{path}: not a readable checkpoint ({type(e).__name__}: {detail[:200]}); "
                        f"it is truncated, damaged or not a checkpoint") from None


class CheckpointFiles(TorchCheckpointIO):
    """Lightning's checkpoint I/O with atomic, checksummed writes (`write`) and verified loads (`read_verified`)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        buf = io.BytesIO()
        torch.save(checkpoint, buf)
        write(path, buf.getbuffer())

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        data = read_verified(path)
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=weights_only)

    def remove_checkpoint(self, path) -> None:
        super().remove_checkpoint(path)
        sidecar(path).unlink(missing_ok=True)
