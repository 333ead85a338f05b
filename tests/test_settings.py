"""Settings declared once: CLI options, runtime keys, flat YAML keys and error messages all
derive from the dataclass declarations (`settings.py`, `config.py`, `cli/options.py`)."""

import json
import typing
from dataclasses import dataclass

import click
import pytest
import yaml
from click.testing import CliRunner

from valuecsv_ray.cli import main
from valuecsv_ray.cli.options import given, options_from
from valuecsv_ray.config import (
    AUDIT_RUNTIME_KEYS,
    TRAIN_RUNTIME_KEYS,
    AuditConfig,
    Hyperparameters,
    InputSpec,
    ScoringSettings,
    ServeConfig,
    TrainConfig,
    load_audit_config,
    load_train_config,
    serve_config,
)
from valuecsv_ray.settings import (
    ConfigError,
    build,
    changed_settings,
    flatten,
    leaves,
    load_settings,
    nested,
    runtime_keys,
    setting,
)

METAVARS = {int: "INTEGER", float: "FLOAT", str: "TEXT"}


def _squash(text: str) -> str:
    """Text without whitespace: click wraps help at spaces and after hyphens."""
    return "".join(text.split())


def _scalar(leaf) -> type | None:
    members = [t for t in (typing.get_args(leaf.type) or (leaf.type,)) if t is not type(None)]
    return members[0] if len(members) == 1 and members[0] in (int, float, str, bool) else None


def _expected_option(leaf) -> str | None:
    """How `--help` shows a setting's option (flag, metavar, help, default), or None if it has none."""
    kind = _scalar(leaf)
    if not leaf.cli or kind is None:
        return None
    flag = "--" + leaf.name.replace("_", "-")
    shown = "" if leaf.default in (None, "", []) else f" [default: {leaf.default}]"
    head = f"{flag} / --no-{flag[2:]}" if kind is bool else f"{flag} {METAVARS[kind]}"
    return f"{head} {leaf.help}{shown}"


# ---------------------------------------------------------------- the CLI's options


@pytest.mark.parametrize(("command", "cls", "count"),
                         [("train", TrainConfig, 29), ("serve", ServeConfig, 18)])
def test_help_shows_an_option_per_scalar_setting_with_its_help(command, cls, count):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    shown = _squash(result.output)
    expected = [e for leaf in leaves(cls) if (e := _expected_option(leaf))]
    assert len(expected) == count  # every scalar setting of the class and its nested classes
    for option in expected:
        assert _squash(option) in shown, option


def test_train_help_covers_both_config_levels_and_leaves_out_what_has_no_flag():
    shown = _squash(CliRunner().invoke(main, ["train", "--help"]).output)
    for option in ("--name TEXT job name", "--taxonomy TEXT the value set",  # TrainConfig
                   "--max-epochs INTEGER upper bound on epochs [default: 20]",  # Hyperparameters
                   "--learning-rate FLOAT AdamW peak learning rate [default: 2e-05]",
                   "--use-gpu / --no-use-gpu train on GPUs [default: False]",
                   "--torch-threads INTEGER torch CPU threads per worker"):
        assert _squash(option) in shown, option
    for absent in ("split_fractions", "resources_per_worker", "eval_token_budget"):  # list, dict, cli=False
        assert "--" + absent.replace("_", "-") not in shown
        assert absent in {leaf.name for leaf in leaves(TrainConfig)}
    assert "--token" not in _squash(CliRunner().invoke(main, ["serve", "--help"]).output).replace(
        "--token-budget", "")


@click.command()
@click.option("--config", "path", default=None)
@options_from(TrainConfig)
def _resolve(path, **flags):
    """A command resolving flags the way `valuecsv-ray train` does, printing the flat config."""
    click.echo(json.dumps(load_train_config(path, given(flags)).to_dict()))


def test_flags_fill_nested_settings_and_flags_not_given_leave_the_file_alone(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("name: fromfile\nmax_epochs: 7\nbatch_size: 4\nuse_gpu: true\n", encoding="utf-8")
    args = ["--config", str(path), "--max-epochs", "3", "--learning-rate", "1e-3", "--aggregate", "mean",
            "--no-use-gpu", "--stride", "64", "--values", "freedom,justice"]
    result = CliRunner().invoke(_resolve, args)
    assert result.exit_code == 0, result.output
    cfg = load_train_config(None, json.loads(result.output))
    hp = cfg.hparams
    assert (hp.max_epochs, hp.learning_rate, hp.aggregate, hp.stride) == (3, 1e-3, "mean", 64)
    assert (cfg.name, hp.batch_size, cfg.use_gpu) == ("fromfile", 4, False)  # file values stand
    assert (hp.seed, cfg.num_workers) == (42, 1)  # declared defaults
    assert cfg.task_ids == ("freedom", "justice")


def test_train_flags_are_validated_with_every_error_at_once(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("max_epochs: 0\npatience: 0\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["train", "--config", str(path), "--max-epochs", "2",
                                       "--batch-size", "0", "--aggregate", "median", "--set", "sed=1"])
    assert result.exit_code == 2  # a usage error, before any training starts
    out = result.output
    for part in ("batch_size must be a positive integer, got 0", "patience must be a positive integer, got 0",
                 "aggregate must be one of ('max', 'mean'), got 'median'",
                 "unknown setting 'sed'", "did you mean 'seed'?"):
        assert part in out, part
    assert "max_epochs" not in out  # the flag's 2 overrides the file's 0


def test_an_unknown_override_is_not_blamed_on_the_config_file(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("max_epochs: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_train_config(path, {"sed": 1})
    assert "unknown setting 'sed'" in str(e.value)
    assert str(path) not in str(e.value)


# ---------------------------------------------------------------- runtime keys


def test_runtime_keys_are_the_settings_declared_identity_false():
    assert set(TRAIN_RUNTIME_KEYS) == {
        "runs_dir", "torch_threads", "eval_token_budget", "num_workers", "use_gpu", "resources_per_worker",
        "max_concurrent", "max_failures", "checkpoints_to_keep", "storage_path"}
    assert set(AUDIT_RUNTIME_KEYS) == {
        "out", "token_budget", "device", "forward", "compile", "attention", "gelu", "precision",
        "batch_size", "actors", "cpus_per_actor", "min_agreement",
        "gpus_per_actor", "read_chunk_rows", "all_prompts"}
    for cls, keys in ((TrainConfig, TRAIN_RUNTIME_KEYS), (AuditConfig, AUDIT_RUNTIME_KEYS)):
        assert keys == tuple(leaf.name for leaf in leaves(cls) if not leaf.identity)
    identity = {"learning_rate", "max_length", "aggregate", "seed", "taxonomy", "values", "split_seed"}
    assert not identity & set(TRAIN_RUNTIME_KEYS)


@dataclass(frozen=True)
class _Inner:
    size: int = setting(8, "rows")
    threads: int | None = setting(None, "threads", identity=False)


@dataclass(frozen=True)
class _Outer:
    name: str = setting("x", "a name")
    inner: _Inner = nested(_Inner, "the inner settings")
    workers: int = setting(1, "workers", identity=False, cli=False)
    tags: list = setting(["a"], "tags")


def test_runtime_keys_and_leaves_of_a_declared_class():
    assert [(leaf.name, leaf.owner, leaf.identity, leaf.cli) for leaf in leaves(_Outer)] == [
        ("name", _Outer, True, True), ("size", _Inner, True, True), ("threads", _Inner, False, True),
        ("workers", _Outer, False, False), ("tags", _Outer, True, True)]
    assert runtime_keys(_Outer) == ("threads", "workers")
    old = flatten(_Outer())
    new = {**old, "threads": 4, "workers": 3, "size": 16}
    assert changed_settings(old, new, runtime_keys(_Outer)) == ["size"]
    assert changed_settings(old, {**old, "extra": 1}, ()) == ["extra"]


def test_list_defaults_are_not_shared_between_instances():
    a, b = _Outer(), _Outer()
    a.tags.append("b")
    assert b.tags == ["a"] and _Outer().tags == ["a"]
    assert TrainConfig().split_fractions is not TrainConfig().split_fractions


# ---------------------------------------------------------------- flat YAML, nested settings


def test_flat_yaml_fills_nested_settings(tmp_path):
    path = tmp_path / "audit.yaml"
    settings = {"inputs": ["a.jsonl"], "registry": "r", "out": "o", "text_column": "answer", "wide": True,
                "token_budget": 2048, "device": "cpu", "actors": 2}
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    cfg = load_audit_config(path)
    assert cfg.input == InputSpec(text_column="answer", wide=True)
    assert cfg.scoring == ScoringSettings(token_budget=2048, device="cpu")
    assert (cfg.actors, cfg.device) == (2, "cpu")
    record = cfg.to_dict()
    assert (record["text_column"], record["token_budget"]) == ("answer", 2048)
    assert not {"input", "scoring"} & set(record)
    assert load_audit_config(overrides=record) == cfg

    train = tmp_path / "train.yaml"
    train.write_text("max_epochs: 3\nlearning_rate: 1.0e-3\nname: n\n", encoding="utf-8")
    assert load_train_config(train).hparams == Hyperparameters(max_epochs=3, learning_rate=1e-3)


def test_build_constructs_the_nested_class():
    cfg = build(_Outer, "toy", {"size": 3, "threads": 2, "name": "y"})
    assert cfg == _Outer(name="y", inner=_Inner(size=3, threads=2))
    assert flatten(cfg) == {"name": "y", "size": 3, "threads": 2, "workers": 1, "tags": ["a"]}


def test_number_like_strings_become_floats_only_for_float_settings():
    cfg = load_train_config(None, {"learning_rate": "1e-3", "weight_decay": "0"})
    assert cfg.hparams.learning_rate == 1e-3 and isinstance(cfg.hparams.learning_rate, float)
    assert cfg.hparams.weight_decay == 0.0 and isinstance(cfg.hparams.weight_decay, float)
    with pytest.raises(ConfigError, match="stride must be a positive integer <= max_length - 2 .*, got '64'"):
        load_train_config(None, {"stride": "64"})  # an int setting does not take a string
    assert load_train_config(None, {"name": "1e3"}).name == "1e3"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("loader", "typo", "right"), [
    (lambda s: load_train_config(None, s), "max_epoch", "max_epochs"),  # nested in Hyperparameters
    (lambda s: load_train_config(None, s), "taxonmy", "taxonomy"),
    (lambda s: load_audit_config(None, {"inputs": ["a"], "registry": "r", "out": "o", **s}), "toke_budget",
     "token_budget"),  # nested in ScoringSettings
    (lambda s: load_audit_config(None, {"inputs": ["a"], "registry": "r", "out": "o", **s}), "text_colum",
     "text_column"),  # nested in InputSpec
    (lambda s: serve_config({"registry": "r", **s}), "max_batchsize", "max_batch_size"),
])
def test_unknown_keys_suggest_the_right_one(loader, typo, right):
    with pytest.raises(ConfigError) as e:
        loader({typo: 1})
    assert f"unknown setting '{typo}'" in str(e.value)
    assert f"did you mean '{right}'?" in str(e.value)


def test_an_unknown_key_like_nothing_gets_no_suggestion(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("zzz_qqq: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_settings(TrainConfig, "training", path)
    assert str(e.value).splitlines()[1].strip() == f"unknown setting 'zzz_qqq' in {path}"


def test_all_errors_are_reported_at_once_across_levels():
    settings = {"lerning_rate": 0.1, "max_epochs": 0, "aggregate": "median", "num_workers": -1,
                "mode": "both", "backbone": "tiny", "max_length": 1024}
    with pytest.raises(ConfigError) as e:
        load_train_config(None, settings)
    lines = str(e.value).splitlines()
    assert lines[0] == "invalid training config:"
    for part in ("unknown setting 'lerning_rate'; did you mean 'learning_rate'?",
                 "max_epochs must be a positive integer, got 0",
                 "aggregate must be one of ('max', 'mean'), got 'median'",
                 "num_workers must be an integer >= 0, got -1",
                 "mode must be one of ('binary', 'multilabel'), got 'both'",
                 "max_length must be <= 512 for the tiny backbone"):
        assert sum(part in line for line in lines) == 1, part
    assert len(lines) == 7

    with pytest.raises(ConfigError) as e:
        load_audit_config(overrides={"inputs": ["a"], "registry": "r", "out": "o", "token_budget": 10,
                                     "device": "tpu", "actors": 0})
    for part in ("token_budget must be an integer >= 512, got 10",
                 "device must be 'cpu' or 'cuda', got 'tpu'", "actors must be a positive integer, got 0"):
        assert part in str(e.value), part


# ---------------------------------------------------------------- the Serve app's args


def test_serve_config_refuses_fewer_ongoing_requests_than_a_batch():
    with pytest.raises(ConfigError) as e:
        serve_config({"registry": "r", "max_batch_size": 64, "max_ongoing_requests": 32})
    assert "max_ongoing_requests (32) must be >= max_batch_size (64)" in str(e.value)
    equal = serve_config({"registry": "r", "max_batch_size": 64, "max_ongoing_requests": 64})
    assert (equal.max_batch_size, equal.max_ongoing_requests) == (64, 64)


def test_serve_config_takes_flat_args_and_names_where_they_came_from():
    cfg = serve_config({"registry": "r", "token_budget": 4096, "device": "cpu", "max_batch_size": 8})
    assert cfg.scoring == ScoringSettings(token_budget=4096, device="cpu")
    assert cfg.batching() == {"max_batch_size": 8, "batch_wait_timeout_s": 0.01}
    assert serve_config(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError) as e:
        serve_config({"max_texts": 3})
    message = str(e.value)
    assert "unknown setting 'max_texts' in the Serve app's args" in message
    assert "registry is required" in message
