"""A config file copied into a group (jsmp.run.groupfiles): its `# @package` header and relative defaults
checked as Hydra reads them, one line naming the file and what to write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jsmp.errors import UserError
from jsmp.run.cli import check_compose
from jsmp.run.groupfiles import check_group_files

CONF = Path(__file__).resolve().parents[2] / "conf"
# the official Optuna plugin's example config (a primary config: relative defaults, no header)
SPHERE = Path(__file__).resolve().parents[1] / "sweeper" / "sphere_app" / "conf" / "config.yaml"
SEARCH = """\
defaults:
  - override /hydra/sweeper: optuna
hydra:
  sweeper:
    n_trials: 3
"""


def search_file(conf: Path, text: str, name: str = "copied") -> list[str]:
    (conf / "hparams_search" / f"{name}.yaml").write_text(text)
    return [f"hparams_search={name}"]


@pytest.fixture(scope="module")
def conf(tmp_path_factory) -> Path:
    return shutil.copytree(CONF, tmp_path_factory.mktemp("groupfiles") / "conf").resolve()


def test_a_file_is_named_by_its_real_path(tmp_path):
    """The package's configs are a link in a clone (jsmp/conf -> conf): the message names the file the user copied."""
    (tmp_path / "conf" / "hparams_search").mkdir(parents=True)
    (tmp_path / "jsmp").mkdir()
    (tmp_path / "jsmp" / "conf").symlink_to(tmp_path / "conf")
    search_file(tmp_path / "conf", SEARCH)
    with pytest.raises(UserError, match=f"^{tmp_path.resolve() / 'conf' / 'hparams_search' / 'copied.yaml'}: it sets"):
        check_group_files(tmp_path / "jsmp" / "conf", ["hparams_search=copied"])


def test_every_shipped_group_file_passes():
    files = [p for p in CONF.rglob("*.yaml") if p.parent != CONF]
    for path in files:
        group = str(path.parent.relative_to(CONF))
        check_group_files(CONF, [f"{group}={path.stem}"])
    assert len(files) > 40


@pytest.mark.parametrize("text", [
    f"# @package _global_\n{SEARCH}",
    f"\n\n# @package _global_\n# conf/hparams_search/copied.yaml: a comment after the header\n{SEARCH}",
])
def test_a_header_first_is_read(conf, text):
    overrides = search_file(conf, text)
    check_group_files(conf, overrides)
    check_compose(overrides, conf)


@pytest.mark.parametrize(("text", "why"), [
    (f"# conf/hparams_search/copied.yaml\n# @package _global_\n{SEARCH}",
     "Hydra ignores its `# @package _global_` (line 2): the header must come before any other line, comments "
     "included; make it the file's first line"),
    (f"# @package _global_ # the sweep\n{SEARCH}",
     "its header: Too many components in '@package _global_ # the sweep'; expected the one line "
     "`# @package _global_` (nothing after the package) before any other line"),
    (SEARCH, "it sets `hydra:` keys but has no `# @package _global_` header, so they would land under "
             "hparams_search.hydra, where Hydra ignores them; make `# @package _global_` its first line"),
    (f"# @package _global_\n{SEARCH}".replace("/hydra/sweeper", "hydra/sweeper"),
     "its defaults name groups relative to hparams_search/ (`override hydra/sweeper: optuna` means the group "
     "hparams_search/hydra/sweeper, which does not exist); a group file names them from the config root: write "
     "`override /hydra/sweeper: optuna`"),
])
def test_a_misread_search_file_is_one_line(conf, text, why):
    overrides = search_file(conf, text)
    with pytest.raises(UserError) as e:
        check_group_files(conf, overrides)
    assert str(e.value) == f"{conf / 'hparams_search' / 'copied.yaml'}: {why}"


def test_the_official_example_names_both_fixes_and_then_composes(conf):
    """Hydra's Optuna example config, copied as a search file: both of its problems in one line; with the header
    first and the defaults absolute it composes, the sweeper and its grid sampler as the example asks."""
    text = SPHERE.read_text()
    with pytest.raises(UserError, match=r"make `# @package _global_` its first line; and its defaults .* write "
                                        r"`override /hydra/sweeper: optuna`, `override /hydra/sweeper/sampler: tpe`$"):
        check_group_files(conf, search_file(conf, text, "sphere"))
    fixed = "# @package _global_\n" + text.replace("override hydra/", "override /hydra/")
    overrides = search_file(conf, fixed, "sphere")
    check_group_files(conf, overrides)
    check_compose(overrides, conf)


def test_each_option_of_a_choice_sweep_is_checked(conf):
    search_file(conf, f"# @package _global_\n{SEARCH}", "good")
    search_file(conf, SEARCH, "bad")
    with pytest.raises(UserError, match="bad.yaml: it sets `hydra:` keys"):
        check_group_files(conf, ["hparams_search=good,bad", "model=lstm", "data.fold=0,1", "~seed"])


@pytest.mark.parametrize(("override", "why"), [
    ("hparams_search=my_search", "no {conf}/hparams_search/my_search.yaml (my_search.yml is not read: Hydra reads "
                                 ".yaml files); expected one of lstm, mlp, my_search_ok"),
    ("experiment=nosuch", "no {conf}/experiment/nosuch.yaml; expected one of first_place,"),
])
def test_a_missing_option_of_an_optional_group_is_named(tmp_path, override, why):
    """Hydra skips a missing option of an `optional` group silently (one training run instead of a search)."""
    conf = shutil.copytree(CONF, tmp_path / "conf").resolve()
    (conf / "hparams_search" / "my_search.yml").write_text(f"# @package _global_\n{SEARCH}")
    (conf / "hparams_search" / "my_search_ok.yaml").write_text(f"# @package _global_\n{SEARCH}")
    with pytest.raises(UserError) as e:
        check_group_files(conf, ["model=lstm", override])
    assert str(e.value).startswith(f"{override}: {why.format(conf=conf)}")


def test_each_option_of_a_list_is_checked(conf):
    """`experiment=[a,b]` selects both files; Hydra skips a missing one of an optional group as silently."""
    with pytest.raises(UserError, match=r"^experiment=nope: no .*/experiment/nope.yaml; expected one of first_place,"):
        check_group_files(conf, ["experiment=[seed_mlp,nope]"])
    check_group_files(conf, ["experiment=[seed_mlp]", "tags=[a,b]"])  # (tags: a list, of no group)


def test_globs_and_other_search_paths_are_left_to_hydra(conf, tmp_path):
    """A glob's options are Hydra's to find; with hydra.searchpath an option may live in another folder."""
    check_group_files(conf, ["model=glob(ml*)", "experiment=glob(*)"])
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\nseed: 3\n")
    overrides = [f"hydra.searchpath=[file://{tmp_path}]", "experiment=mine"]
    check_group_files(conf, overrides)
    check_compose(overrides, conf)


def test_a_renamed_sweeper_class_is_one_line_naming_its_name_now(conf):
    """A search file of an earlier jsmp naming the sweeper's old class (Hydra: a traceback, "Unknown plugin class")."""
    old = "hydra_plugins.jsmp_optuna_sweeper.sweeper.OptunaSweeper"
    with pytest.raises(UserError, match=rf"^hydra.sweeper._target_={old}: that class was renamed; write "
                                        r"hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper \(or leave"):
        check_compose(["hparams_search=mlp", f"hydra.sweeper._target_={old}"], conf)
