"""The shipped Serve YAMLs, validated without Ray running: Serve's own schema, and their `args:`
through the same settings the app builder and `valuecsv-ray serve` use."""

from pathlib import Path

import pytest
import yaml

from valuecsv_ray.config import ConfigError, serve_config
from valuecsv_ray.settings import leaves

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "serve_configs").glob("*.yaml"))


def test_two_serve_configs_ship():
    assert {p.name for p in CONFIGS} == {"ensemble.yaml", "ensemble-gpu.yaml"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_serve_config_validates(path):
    from ray.serve.schema import ServeDeploySchema  # the schema only; no Ray instance starts

    config = yaml.safe_load(path.read_text())
    schema = ServeDeploySchema(**config)
    assert schema.http_options.host == "127.0.0.1"
    for app in config["applications"]:
        assert app["import_path"] == "valuecsv_ray.serve:app_builder"
        args = serve_config(app["args"])
        assert args.max_ongoing_requests >= args.max_batch_size, "batches could never fill"
        assert args.max_queued_requests > 0


def test_a_typo_in_the_args_is_refused_with_the_right_name():
    with pytest.raises(ConfigError, match="did you mean 'max_batch_size'"):
        serve_config({"registry": "runs/x", "max_batch_sise": 8})


def test_the_serve_cli_takes_every_yaml_setting():
    from click.testing import CliRunner

    from valuecsv_ray.cli import main
    from valuecsv_ray.config import ServeConfig

    help_text = CliRunner().invoke(main, ["serve", "--help"]).output
    for leaf in leaves(ServeConfig):
        if leaf.cli:
            assert "--" + leaf.name.replace("_", "-") in help_text, leaf.name
