"""Find a raw source's files (a CSV, CSV.gz, Parquet file or a directory of Parquet parts, hive
partitions such as `partition_id=K/` in numeric order), tell each one's format by its first bytes,
and fingerprint and hash them (the manifest's `source`: docs/ingest.md)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from jsmp.errors import UserError

HASH = "sha1"
MAGIC = {b"PAR1": "parquet", b"\x1f\x8b": "csv.gz"}  # first bytes -> format, whatever the file's name
FOREIGN = {  # first bytes of files the reader does not read
    b"PK\x03\x04": "a zip archive (unzip it first)",
    b"BZh": "bzip2-compressed (decompress it, or gzip it)",
    b"\xfd7zXZ\x00": "xz-compressed (decompress it, or gzip it)",
    b"\x28\xb5\x2f\xfd": "zstd-compressed (decompress it, or gzip it)",
    b"\xff\xfe": "UTF-16 text (save it as UTF-8)",
    b"\xfe\xff": "UTF-16 text (save it as UTF-8)",
}


def read_error(path: Path, e: OSError) -> UserError:
    """A one-line UserError for an OSError met opening or reading `path`."""
    why = "permission denied" if isinstance(e, PermissionError) else e.strerror or str(e).splitlines()[0]
    return UserError(f"{e.filename or path}: cannot read ({why})")


def sniff(path: Path) -> str:
    """The format of file `path` (csv | csv.gz | parquet): by its first bytes, else by its name."""
    with open(path, "rb") as f:
        head = f.read(8)
    for magic, what in FOREIGN.items():
        if head.startswith(magic):
            raise UserError(f"{path}: is {what}; expected a Kaggle train.csv (UTF-8), train.csv.gz or Parquet")
    for magic, kind in MAGIC.items():
        if head.startswith(magic):
            return kind
    return "parquet" if path.suffix == ".parquet" else "csv.gz" if path.suffix == ".gz" else "csv"


_HIVE = re.compile(r"^([^=]+)=(-?\d+)$")


def hive_keys(path: Path, root: Path) -> dict[str, int]:
    """The integer `key=value` components of `path` below `root`: `partition_id=3/part-0.parquet` -> {"partition_id": 3}."""
    return {m.group(1): int(m.group(2)) for part in path.relative_to(root).parts[:-1] if (m := _HIVE.match(part))}


def hive_order(path: Path, root: Path) -> tuple:
    """Sort key of a part below `root`: path components in name order, but `key=N` ones by `key`,
    then N as a number (partition_id=10 after partition_id=9)."""
    key = []
    for part in path.relative_to(root).parts:
        m = _HIVE.match(part)
        key.append((m.group(1) + "=", int(m.group(2)), part) if m else (part, 0, part))  # the name breaks ties (k=01, k=1)
    return tuple(key)


def hidden(name: str) -> bool:
    """Whether a file or directory below a source directory is left out: a name starting with `_` or `.`
    (Spark's `_temporary/` and `_SUCCESS`, `.part-0.parquet.crc`, a writer's hidden temp), as Spark,
    Hive and pyarrow.dataset leave them out."""
    return name.startswith(("_", "."))


def _parquet_files(root: Path) -> list[Path]:
    """The *.parquet files under directory `root` in hive order (hive_order), each checked readable;
    hidden (`_*`, `.*`) files and directories left out."""

    def unlistable(e: OSError):
        why = "permission denied" if isinstance(e, PermissionError) else e.strerror
        raise UserError(f"cannot list directory {e.filename} ({why}); expected a readable directory of Parquet parts")

    def walk():
        for d, dirs, names in os.walk(root, onerror=unlistable):
            dirs[:] = [n for n in dirs if not hidden(n)]  # pruned: os.walk does not enter them
            yield from (Path(d, n) for n in names if n.endswith(".parquet") and not hidden(n))

    files = sorted(walk(), key=lambda f: hive_order(f, root))
    files = [f for f in files if f.is_file()]
    if not files:
        raise UserError(f"{root}: directory holds no *.parquet files (names starting with _ or . are left out); "
                        f"expected a directory of Parquet parts")
    for f in files:
        sniff(f)
    return files


@dataclass
class Source:
    """A raw source: its files (one, or a directory's Parquet parts in hive order), their format,
    and each one's (size, mtime ns) for the cheap unchanged check."""

    path: Path
    kind: str  # csv | csv.gz | parquet
    files: list[Path]
    stats: list[tuple[int, int]] = field(default_factory=list)

    @classmethod
    def of(cls, src: str | os.PathLike) -> Source:
        path = Path(src)
        try:
            if not path.exists():
                raise UserError(f"{path}: no such file or directory; expected a Kaggle train.csv(.gz), a .parquet file or a directory of them")
            files, kind = (_parquet_files(path), "parquet") if path.is_dir() else ([path], sniff(path))
            return cls(path, kind, files, [(st.st_size, st.st_mtime_ns) for st in map(os.stat, files)])
        except OSError as e:
            raise read_error(path, e) from None

    @property
    def size(self) -> int:
        return sum(s for s, _ in self.stats)

    def fingerprint(self) -> list:
        """[[name relative to `path`, size, mtime ns], ...] of every file."""
        return [[str(f.relative_to(self.path) if f != self.path else f.name), s, m] for f, (s, m) in zip(self.files, self.stats)]

    def checksum(self) -> str:
        """`sha1:HEX` of the source bytes (every file in order)."""
        h = hashlib.new(HASH)
        for f in self.files:
            try:
                with open(f, "rb") as fh:
                    while chunk := fh.read(1 << 24):
                        h.update(chunk)
            except OSError as e:
                raise read_error(f, e) from None
        return f"{HASH}:{h.hexdigest()}"

    def manifest(self, checksum: str) -> dict:
        """The store manifest's `source` entry."""
        return {"kind": self.kind, "path": str(self.path.resolve()), "bytes": self.size, "files": self.fingerprint(), "checksum": checksum}
