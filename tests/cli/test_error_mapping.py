"""Every expected error of the package derives from ValuecsvError, and the CLI maps any of them,
in one place, to `error: message` on stderr and the class's exit code."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import click
from click.testing import CliRunner

import valuecsv_ray
from valuecsv_ray.cli import main
from valuecsv_ray.cli.options import Command
from valuecsv_ray.errors import ValuecsvError

# Exceptions that are not expected errors of a command, each with its reason.
NOT_EXPECTED_ERRORS = {
    "valuecsv_ray.serve.api.BodyTooLarge",  # an HTTP 413 that Serve answers, never reaches the CLI
    "valuecsv_ray.retry.Transient",  # a retry signal: the caller of RetryPolicy.call turns it into its error
    "valuecsv_ray.scoring.client._Busy",  # the client's Transient; it raises EndpointError instead
    "valuecsv_ray.collect.requester._Failed",  # the collector's Transient; it becomes the row's status
    "valuecsv_ray.collect.providers.base.NotAReply",  # a body that is not an answer: status bad_response
}


def _module_names() -> list[str]:
    """Every module of the package, by file (collect/ is a namespace package, which pkgutil skips)."""
    root = Path(valuecsv_ray.__file__).parent
    parts = (("valuecsv_ray", *p.relative_to(root).with_suffix("").parts) for p in root.rglob("*.py"))
    return sorted(".".join(names).removesuffix(".__init__") for names in parts)


def _exception_classes() -> dict[str, type]:
    found = {}
    for module_name in _module_names():
        module = importlib.import_module(module_name)
        for name, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == module_name:
                found[f"{module_name}.{name}"] = obj
    return found


def test_every_error_class_of_the_package_derives_from_valuecsv_error():
    classes = _exception_classes()
    expected = {name: cls for name, cls in classes.items() if name not in NOT_EXPECTED_ERRORS}
    assert len(expected) >= 20, sorted(classes)  # the walk found the package's errors
    assert NOT_EXPECTED_ERRORS <= set(classes), "an exemption names a class that is gone"
    assert [name for name, cls in expected.items() if not issubclass(cls, ValuecsvError)] == []


def test_errors_keep_their_builtin_base():
    from valuecsv_ray.registry.manifest import RegistryError
    from valuecsv_ray.settings import ConfigError

    assert issubclass(RegistryError, RuntimeError) and issubclass(ConfigError, ValueError)


class _Broken(ValuecsvError):
    exit_code = 3


def test_cli_maps_any_valuecsv_error_to_its_message_and_exit_code(monkeypatch):
    def load_taxonomy(_name):
        raise _Broken("taxonomy.yaml, key 'labels': empty; list at least one value")

    monkeypatch.setattr("valuecsv_ray.taxonomy.load_taxonomy", load_taxonomy)
    result = CliRunner().invoke(main, ["data", "check", "whatever.xlsx"])
    assert result.exit_code == 3
    assert result.stderr == "error: taxonomy.yaml, key 'labels': empty; list at least one value\n"


def test_a_command_on_its_own_maps_expected_errors_too():
    @click.command(cls=Command)
    def broken() -> None:
        raise _Broken("bad row 7")

    result = CliRunner().invoke(broken, [])
    assert (result.exit_code, result.stderr) == (3, "error: bad row 7\n")


def test_unexpected_errors_keep_their_traceback():
    @click.command(cls=Command)
    def buggy() -> None:
        raise KeyError("a bug")

    result = CliRunner().invoke(buggy, [])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)
