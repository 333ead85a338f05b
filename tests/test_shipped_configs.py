"""Every YAML that ships loads with the loader of its kind, and the folder says the kind:
configs/<command>/ (train, distill, audit, collect, eval), serve_configs/ (Ray Serve), and the
taxonomies and weight-profile presets in valuecsv_ray/resources/. A file in a folder no loader is
declared for, or one its loader refuses, fails. Nothing here starts Ray."""

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from valuecsv_ray.collect.config import load_collect_config, load_endpoints
from valuecsv_ray.config import load_audit_config, load_distill_config, load_train_config, serve_config
from valuecsv_ray.eval.config import load_eval_config
from valuecsv_ray.leaderboard.profiles import load_profiles, presets
from valuecsv_ray.settings import read_yaml
from valuecsv_ray.taxonomy import load_taxonomy

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "valuecsv_ray" / "resources"
FROM_THE_COMMAND_LINE = {"inputs": ["x.jsonl"], "registry": "r", "out": "o"}  # per run, not in a file


def train(path: Path) -> None:
    load_train_config(path)


def distill(path: Path) -> None:
    load_distill_config(path, {"registry": FROM_THE_COMMAND_LINE["registry"]})


def audit(path: Path) -> None:
    load_audit_config(path, FROM_THE_COMMAND_LINE)


def collect(path: Path) -> None:
    """An endpoints file (a list under `endpoints:`), else a collect run's settings."""
    if isinstance(read_yaml(path).get("endpoints"), list):
        assert load_endpoints(path)
    else:
        load_collect_config(path)


def evaluation(path: Path) -> None:
    """The settings, and what they name that ships: the endpoints file and the profiles."""
    cfg = load_eval_config(path)
    endpoints = ROOT / cfg.collect.endpoints
    assert endpoints.is_file(), f"{path}: endpoints {cfg.collect.endpoints} is not a shipped file"
    assert load_endpoints(endpoints)
    assert load_profiles(cfg.profiles, load_taxonomy())


def serve(path: Path) -> None:
    from ray.serve.schema import ServeDeploySchema  # the schema only; no Ray instance starts

    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    ServeDeploySchema(**config)
    for app in config["applications"]:
        serve_config(app["args"])


def taxonomy(path: Path) -> None:
    assert load_taxonomy(str(path)).name == path.stem


def profile_presets(path: Path) -> None:
    """A preset file of the taxonomy its folder is named after, checked with all the others."""
    assert path.stem in presets(load_taxonomy(path.parent.name))


LOADERS: dict[Path, Callable[[Path], None]] = {  # folder -> the loader of the files in it
    ROOT / "configs" / "train": train,
    ROOT / "configs" / "distill": distill,
    ROOT / "configs" / "audit": audit,
    ROOT / "configs" / "collect": collect,
    ROOT / "configs" / "eval": evaluation,
    ROOT / "serve_configs": serve,
    RESOURCES / "taxonomies": taxonomy,
    **{folder: profile_presets for folder in (RESOURCES / "profiles").iterdir() if folder.is_dir()},
}
SHIPPED = sorted(p for top in (ROOT / "configs", ROOT / "serve_configs", RESOURCES / "taxonomies",
                               RESOURCES / "profiles") for p in top.rglob("*") if p.is_file())


def test_every_kind_ships_a_file():
    folders = {p.parent for p in SHIPPED}
    assert set(LOADERS) <= folders, f"no file in {sorted(map(str, set(LOADERS) - folders))}"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_file_loads_with_the_loader_of_its_folder(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the shipped files name each other relative to the checkout
    loader = LOADERS.get(path.parent)
    assert loader is not None, (f"{path.relative_to(ROOT)}: no loader for the folder "
                                f"{path.parent.relative_to(ROOT)}; put it where the command that reads it "
                                "looks (configs/<command>/), or declare its kind in LOADERS")
    assert path.suffix == ".yaml", f"{path.relative_to(ROOT)}: shipped configs are .yaml files"
    loader(path)
