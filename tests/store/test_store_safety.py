"""Store destinations are safe and every byte a run reads is verified (stores and their caches)."""

import json
import logging
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, data_cli_error, run_data
from jsmp.batches.fill import NAN_ROWS_META, ffill_store, nan_rows
from jsmp.data.synthetic import SynthSpec, write_csv, write_store
from jsmp.errors import UserError
from jsmp.store.caches import FFILL_DIR, NAN_ROWS
from jsmp.store.store import MANIFEST, Store, StoreWriter, _days_problem, damage_at

SPEC = SynthSpec(days=6, rows_per_day=40, seed=5)
SYNTH = ["synth", "--days", "6", "--rows-per-day", "40", "--seed", "5"]


def _error_line(p) -> str:
    """The one `error:` line of a finished CLI run that failed as a user mistake should."""
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def _snapshot(root) -> dict:
    """Every path under `root` (itself included) with its bytes (a symlink its target, a directory None)."""
    def content(p):
        return os.readlink(p) if p.is_symlink() else None if p.is_dir() else p.read_bytes()

    return {str(p.relative_to(root)): content(p) for p in [root, *sorted(root.rglob("*"))]}


def _flip(path, offset=-3):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _real_store(path):
    """A small store whose manifest says it was ingested from a CSV."""
    src = {"kind": "csv", "path": "/data/train.csv", "checksum": "sha1:0"}
    with StoreWriter(path, ["feature_0"], {"date": "int32", "weight": "float32"}, src) as w:
        w.append(np.ones((4, 1)), {"date": np.array([0, 0, 1, 1]), "weight": np.ones(4)})
        return w.close()


# -- destinations --------------------------------------------------------------------------
def test_a_directory_of_other_files_is_never_replaced(tmp_path):
    data = tmp_path / "data"
    write_csv(SPEC, data / "train.csv")
    (data / "notes.txt").write_text("mine")
    before = _snapshot(tmp_path)
    for args in (["ingest", "data/train.csv", "--store", "data"], [*SYNTH, "--store", "data"]):
        line = _error_line(run_data(args, cwd=tmp_path))
        assert "--store data:" in line and ("not a jsmp store" in line or "contains the input data/train.csv" in line)
        assert _snapshot(tmp_path) == before  # nothing touched, no temp or trash sibling


def test_a_regular_file_or_foreign_symlink_is_never_replaced(tmp_path):
    (tmp_path / "f.txt").write_text("keep me")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "other")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    before = _snapshot(tmp_path)
    for name, found in [("f.txt", "an existing file that is not a jsmp store"), ("link", "a directory that is not a jsmp store"),
                        ("dangling", "an existing file that is not a jsmp store")]:
        line = _error_line(run_data([*SYNTH, "--store", name], cwd=tmp_path))
        assert f"--store {name}: {found}" in line
    assert _snapshot(tmp_path) == before  # no `.f.txt.old-*` either


def test_the_current_directory_is_never_a_store(tmp_path):
    write_csv(SPEC, tmp_path / "train.csv")
    before = _snapshot(tmp_path)
    assert "--store .:" in _error_line(run_data(["ingest", "train.csv", "--store", "."], cwd=tmp_path))
    assert "--store .:" in _error_line(run_data([*SYNTH, "--store", "."], cwd=tmp_path))
    assert _snapshot(tmp_path) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    line = _error_line(run_data([*SYNTH, "--store", "."], cwd=empty))
    assert line == "error: --store .: is or contains the current directory; choose another --store"
    inside = write_store(SPEC, tmp_path / "s")
    assert "is or contains the current directory" in _error_line(run_data([*SYNTH, "--store", ".", "--force"], cwd=inside))


def test_a_store_holding_its_own_source_is_refused(tmp_path):
    store = write_store(SPEC, tmp_path / "s")
    src = write_csv(SPEC, store / "train.csv")
    before = _snapshot(tmp_path)
    with pytest.raises(UserError, match=r"--store .*/s: contains the input .*train.csv; writing there would destroy it"):
        StoreWriter(store, ["feature_0"], {"date": "int32"}, {}, inputs=[src])
    line = _error_line(run_data(["ingest", "s/train.csv", "--store", "s", "--force"], cwd=tmp_path))
    assert "--store s: contains the input" in line
    assert _snapshot(tmp_path) == before


def test_a_symlink_to_a_store_replaces_the_store_it_points_to(tmp_path):
    real = write_store(SynthSpec(days=3, rows_per_day=20), tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    p = run_data([*SYNTH, "--store", "link"], cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "link").is_symlink() and Store(real).manifest["source"]["days"] == 6


def test_an_unwritable_parent_is_named_before_any_work(tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    if subprocess.run(["chattr", "+i", str(parent)], check=False, capture_output=True).returncode:
        pytest.skip("chattr +i is not available here")
    try:
        line = _error_line(run_data([*SYNTH, "--store", "ro/s"], cwd=tmp_path))
        assert line == "error: --store ro/s: its parent directory ro is not writable"
    finally:
        subprocess.run(["chattr", "-i", str(parent)], check=True)
    assert list(parent.iterdir()) == []


def test_an_unwritable_parent_as_another_user(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("needs root to run the CLI as user nobody")
    try:
        subprocess.run([sys.executable, "-c", "import jsmp.store.store"], cwd=ROOT, user=65534, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("user nobody cannot run this venv's python")
    base = tmp_path_factory.mktemp("nobody")
    os.chmod(base, 0o777)
    (base / "ro").mkdir(mode=0o555)
    p = subprocess.run([sys.executable, "-m", "jsmp.data", *SYNTH, "--store", str(base / "ro" / "s")], cwd=ROOT, user=65534, check=False,
                       capture_output=True, text=True)
    assert _error_line(p).endswith(f"its parent directory {base / 'ro'} is not writable")


def test_racing_writers_all_succeed_and_leave_one_whole_store(tmp_path):
    procs = [subprocess.Popen([sys.executable, "-m", "jsmp.data", *SYNTH, "--store", "same", "--force"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and "Traceback" not in err and out.strip() == "wrote same", err
    assert damage_at(tmp_path / "same") is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same"]  # no temp, trash or lock file left


# -- synth semantics -------------------------------------------------------------------------
def test_synth_store_up_to_date_force_and_real_data(tmp_path):
    p = run_data([*SYNTH, "--store", "s"], cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "wrote s"
    stamp = (tmp_path / "s" / MANIFEST).stat().st_mtime_ns
    p = run_data([*SYNTH, "--store", "s"], cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.strip() == "s is up to date with synthetic-d6-r40-s5 (--force regenerates it)"
    assert (tmp_path / "s" / MANIFEST).stat().st_mtime_ns == stamp
    p = run_data([*SYNTH, "--store", "s", "--force"], cwd=tmp_path)
    assert p.returncode == 0 and (tmp_path / "s" / MANIFEST).stat().st_mtime_ns != stamp
    assert run_data([*SYNTH[:-2], "--seed", "6", "--store", "s"], cwd=tmp_path).returncode == 0  # other synthetic data: replaced
    assert Store(tmp_path / "s").manifest["source"]["seed"] == 6
    real = _real_store(tmp_path / "real")
    before = _snapshot(real)
    line = _error_line(run_data([*SYNTH, "--store", "real"], cwd=tmp_path))
    assert line == ("error: --store real: holds data ingested from /data/train.csv; synth would replace it with "
                    "synthetic data. Add --force to replace it, or choose another --store")
    assert _snapshot(real) == before
    assert run_data([*SYNTH, "--store", "real", "--force"], cwd=tmp_path).returncode == 0
    assert Store(real).manifest["source"]["kind"] == "synthetic"


def test_synth_out_replaces_only_its_own_csv(tmp_path):
    (tmp_path / "mine.csv").write_text("date,weight\n1,2\n")
    line = _error_line(run_data([*SYNTH, "--out", "mine.csv"], cwd=tmp_path))
    assert line == ("error: --out mine.csv: an existing file that synth did not write (no mine.csv.ideal.npy beside it); "
                    "synth replaces only its own CSVs. Choose another --out, or move that file away first")
    assert (tmp_path / "mine.csv").read_text() == "date,weight\n1,2\n"
    assert run_data([*SYNTH, "--out", "t.csv"], cwd=tmp_path).returncode == 0
    first = (tmp_path / "t.csv").read_bytes()
    assert run_data([*SYNTH[:-2], "--seed", "9", "--out", "t.csv"], cwd=tmp_path).returncode == 0  # its own CSV: replaced
    assert (tmp_path / "t.csv").read_bytes() != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.csv", "t.csv", "t.csv.ideal.npy"]
    assert "--force: only with --store" in _error_line(run_data([*SYNTH, "--out", "t.csv", "--force"], cwd=tmp_path))


# -- integrity of the store ------------------------------------------------------------------
def test_a_flipped_bit_in_a_side_column_is_named(tmp_path):
    path = write_store(SPEC, tmp_path / "s")
    _flip(path / "weight.npy")
    store = Store(path)  # same size: opening is cheap and fine
    assert store.damage(full=False) is None
    assert store.damage() == "column weight.npy does not match its checksum in the manifest"
    hint = "python -m jsmp.data synth --store s --days 6 --rows-per-day 40 --seed 5 --force"
    with pytest.raises(UserError, match="column weight.npy does not match its checksum in the manifest"):
        store.verify()
    line = _error_line(run_data(["verify", "s"], cwd=tmp_path))
    assert line == ("error: store s: column weight.npy does not match its checksum in the manifest "
                    f"(the store is damaged; rebuild it: {hint})")
    assert run_data(hint.split()[3:], cwd=tmp_path).returncode == 0  # the command the message gives works
    p = run_data(["verify", "s"], cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("store s: OK (10 files,")


def test_damage_is_described_never_raised(tmp_path):
    path = write_store(SPEC, tmp_path / "s")
    assert damage_at(path) is None and damage_at(tmp_path / "nope") == "does not exist"
    with open(path / "resp.npy", "ab") as f:
        f.write(b"\0")
    assert damage_at(path, full=False).startswith("column resp.npy has ")
    with pytest.raises(UserError, match=r"store .*: column resp.npy has \d+ bytes, the manifest says \d+ \(the store is damaged; rebuild it: python -m jsmp.data synth"):
        Store(path)
    (path / "features-00000.npy").unlink()
    assert damage_at(path) == "shard features-00000.npy is missing"
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["n_rows"] += 1  # a flipped digit in the manifest
    (path / MANIFEST).write_text(json.dumps(manifest))
    assert damage_at(path) == "manifest.json does not match its own checksum"
    (path / MANIFEST).write_text("{not json")
    assert damage_at(path).startswith("manifest.json is not valid JSON")
    with pytest.raises(UserError, match=r"manifest.json is not valid JSON .* rebuild it: python -m jsmp.data ingest SRC --store"):
        Store(path)


def test_stores_written_before_checksums_still_open_and_verify(tmp_path):
    path = write_store(SPEC, tmp_path / "s")
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["side_digests"], manifest["manifest_crc32"]
    (path / MANIFEST).write_text(json.dumps(manifest))
    store = Store(path)
    store.verify()
    assert store.damage() is None and store.n_rows == manifest["n_rows"]


# -- integrity of the caches -----------------------------------------------------------------
def test_a_damaged_nan_rows_cache_is_named_and_rebuilt_on_request(tmp_path):
    path = write_store(SPEC, tmp_path / "s")
    flags = np.array(nan_rows(Store(path)))
    assert json.loads((path / NAN_ROWS_META).read_text())["files"][NAN_ROWS]["bytes"] == (path / NAN_ROWS).stat().st_size
    (path / NAN_ROWS).write_bytes((path / NAN_ROWS).read_bytes()[:-10])  # truncated
    with pytest.raises(UserError, match=r"cache nan-rows.npy has \d+ bytes, the manifest says \d+ \(remove .*nan-rows.npy, "
                                        r"a cache jsmp rebuilds on the next run, or run: python -m jsmp.data verify .* --rebuild-caches\)"):
        nan_rows(Store(path))
    line = _error_line(run_data(["verify", "s"], cwd=tmp_path))
    assert "cache nan-rows.npy has" in line and "--rebuild-caches" in line
    p = run_data(["verify", "s", "--rebuild-caches"], cwd=tmp_path)
    assert p.returncode == 0 and "cache nan-rows.npy: rebuilt (nan-rows.npy has" in p.stdout, p.stderr
    np.testing.assert_array_equal(nan_rows(Store(path)), flags)
    p = run_data(["verify", "s"], cwd=tmp_path)
    assert p.returncode == 0 and "cache nan-rows.npy: OK" in p.stdout


def test_a_flipped_bit_in_the_ffill_cache_is_caught_when_the_store_is_verified(tmp_path):
    path = write_store(SPEC, tmp_path / "s", shard_rows=100)
    expected = ffill_store(Store(path)).gather(np.arange(50))
    shard = path / FFILL_DIR / "features-00001.npy"
    _flip(shard)
    ffill_store(Store(path))  # sizes match: an unverified store uses it
    store = Store(path)
    store.verify()
    with pytest.raises(UserError, match="cache fill-ffill/features-00001.npy does not match its checksum in the manifest"):
        ffill_store(store)
    assert "cache fill-ffill/features-00001.npy does not match" in _error_line(run_data(["verify", "s"], cwd=tmp_path))
    shard.write_bytes(shard.read_bytes()[:100])  # truncated: caught on every open
    with pytest.raises(UserError, match=r"cache fill-ffill/features-00001.npy has 100 bytes"):
        ffill_store(Store(path))
    assert run_data(["verify", "s", "--rebuild-caches"], cwd=tmp_path).returncode == 0
    store = Store(path)
    store.verify()
    np.testing.assert_array_equal(ffill_store(store).gather(np.arange(50)), expected)


def test_caches_without_checksums_or_of_another_store_are_rebuilt(tmp_path, caplog):
    path = write_store(SPEC, tmp_path / "s")
    flags = np.array(nan_rows(Store(path)))
    (path / NAN_ROWS_META).unlink()  # as an older jsmp left it
    (path / NAN_ROWS).write_bytes(b"junk")
    with caplog.at_level(logging.WARNING):
        np.testing.assert_array_equal(nan_rows(Store(path)), flags)
    assert "rebuilding the cache nan-rows.npy: it has no checksums" in caplog.text
    ffill_store(Store(path))
    meta = path / FFILL_DIR / "manifest.json"
    m = json.loads(meta.read_text())
    m["store"] = "00000000"  # computed from an earlier store at this path
    meta.write_text(json.dumps(m))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        ffill_store(Store(path))
    assert "rebuilding the cache fill-ffill: it was computed from an earlier store at this path" in caplog.text
    assert json.loads(meta.read_text())["store"] == Store(path).identity


def test_temps_of_killed_cache_builds_are_removed(tmp_path):
    path = write_store(SPEC, tmp_path / "s")
    dead, live = _dead_pid(), os.getpid()
    for name in (f".{FFILL_DIR}.tmp-{dead}-0badf00d", f".{FFILL_DIR}.tmp-{live}-0badf00d"):
        (path / name).mkdir()
        (path / name / "features-00000.npy").write_bytes(b"partial")
    (path / f".{NAN_ROWS}.tmp-{dead}-0badf00d").write_bytes(b"partial")
    nan_rows(Store(path))
    ffill_store(Store(path))
    left = sorted(p.name for p in path.iterdir() if p.name.startswith("."))
    assert left == [f".{FFILL_DIR}.tmp-{live}-0badf00d"]  # a live writer's temp stays
    shutil.rmtree(path / left[0])
    assert sorted(p.name for p in path.iterdir() if p.name.startswith(".")) == []


# -- a manifest that agrees with its own checksum but not with itself or the files ------------------
def _rewrite(path, **changes):
    """Change keys of the store's manifest and recompute its checksum (as a tamperer would)."""
    from jsmp.store.store import write_manifest

    manifest = json.loads((path / MANIFEST).read_text())
    manifest.update({k: v(manifest) if callable(v) else v for k, v in changes.items()})
    write_manifest(path, manifest)


@pytest.mark.parametrize("changes, message", [
    ({"n_rows": lambda m: str(m["n_rows"])}, 'manifest.json: n_rows must be an integer >= 1, got "'),
    ({"days": "0..5"}, 'manifest.json: days must be a list of integers, got "0..5"'),
    ({"shards": lambda m: [{**m["shards"][0], "start": None}]}, "manifest.json: shards must be a non-empty list of {file, start, stop"),
    ({"source": "x"}, 'manifest.json: source must be an object, got "x"'),
    ({"n_rows": lambda m: 2 * m["n_rows"]}, "manifest.json: day_offsets must run strictly increasing from 0 to n_rows"),
    ({"day_offsets": lambda m: m["day_offsets"][:1] + m["day_offsets"][2:]}, "manifest.json: day_offsets must run strictly"),
    ({"n_rows": lambda m: 2 * m["n_rows"], "day_offsets": lambda m: [*m["day_offsets"][:-1], 2 * m["n_rows"]],
      "shards": lambda m: [{**m["shards"][0], "stop": 2 * m["n_rows"]}]},
     "shard features-00000.npy has 99968 bytes, but the 384 rows manifest.json gives it take 199808 (manifest.json or the file was altered)"),
])
def test_a_manifest_inconsistent_with_itself_or_its_files_is_one_line(tmp_path, capsys, changes, message):
    path = write_store(SPEC, tmp_path / "s", shard_rows=1000)
    _rewrite(path, **changes)
    hint = "(the store is damaged; rebuild it: python -m jsmp.data "
    with pytest.raises(UserError) as e:
        Store(path)
    assert message in str(e.value) and hint in str(e.value), str(e.value)
    for command in ("info", "verify"):
        assert message in data_cli_error([command, str(path)], capsys)
    assert damage_at(path) is not None


def test_day_offsets_that_do_not_match_the_dates_are_refused_where_checksums_are(tmp_path, capsys):
    path = write_store(SPEC, tmp_path / "s")
    offsets = Store(path).day_offsets.tolist()
    _rewrite(path, day_offsets=[0, offsets[1] - 5, *offsets[2:]])
    Store(path)  # opening checks sizes and counts only
    message = (f"manifest.json: day_offsets[1] = {offsets[1] - 5} starts date 1, but row {offsets[1] - 5} of date.npy holds date 0 "
               f"(the manifest was altered)")
    with pytest.raises(UserError, match=re.escape(message)):
        Store(path).verify()
    assert message in data_cli_error(["verify", str(path)], capsys)
    # the first day's rows moved to the second: every date still starts at its offset, but the date changes elsewhere
    assert _days_problem(path, {**Store(path).manifest, "day_offsets": offsets}) is None
    swap = {**Store(path).manifest, "days": [0, 2, 1, 3, 4, 5]}
    assert _days_problem(path, swap).startswith("manifest.json: day_offsets[1] =")


def test_stores_without_a_feature_limit_have_their_values_checked_by_verify(tmp_path, capsys):
    path = write_store(SPEC, tmp_path / "s")
    assert Store(path).feature_limit == 1e6  # the generator checks its values against the default limit
    x = np.load(path / "features-00000.npy")
    x[7, 3] = 3e38
    np.save(path / "features-00000.npy", x)
    manifest = json.loads((path / MANIFEST).read_text())
    del manifest["feature_limit"], manifest["manifest_crc32"], manifest["shards"][0]["crc32"]
    (path / MANIFEST).write_text(json.dumps(manifest))  # a store from before the limit (and the checksums)
    store = Store(path)
    assert store.feature_limit is None
    with pytest.raises(UserError, match=r"row 7, feature feature_3: 3e\+38 is beyond the feature limit ±1e\+06 \(this store was "
                                        r"written before ingest checked it\); re-ingest it: python -m jsmp.data synth"):
        store.verify()
