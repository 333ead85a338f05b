"""Click options derived from the settings declarations (`valuecsv_ray.config`), and the one place
that turns expected errors into a message and an exit code (`Command`, `Group`, `fail`).

    @options_from(TrainConfig)
    def train(**flags): cfg = load_train_config(path, given(flags))

One option per setting (`--max-epochs` for `max_epochs`), with the declaration's help and
default; bool settings get `--x/--no-x`; list and mapping settings, and those declared
`cli=False`, are set with `--set KEY=VALUE` or YAML. An option not given is None, so the
config file's value (or the declared default) stands.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import click

from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.settings import Leaf, leaves

_SCALARS = {int: int, float: float, str: str}


def _scalar_type(leaf: Leaf):
    members = [t for t in (typing.get_args(leaf.type) or (leaf.type,)) if t is not type(None)]
    return members[0] if len(members) == 1 and members[0] in (*_SCALARS, bool) else None


def option_for(leaf: Leaf) -> Callable | None:
    """The click option of one setting, or None where it has none."""
    kind = _scalar_type(leaf)
    if not leaf.cli or kind is None:
        return None
    flag = "--" + leaf.name.replace("_", "-")
    shown = "" if leaf.default in (None, "", []) else f" [default: {leaf.default}]"
    if kind is bool:
        return click.option(f"{flag}/--no-{flag[2:]}", leaf.name, default=None, help=leaf.help + shown)
    return click.option(flag, leaf.name, type=_SCALARS[kind], default=None, help=leaf.help + shown)


def options_from(cls: type, skip: tuple[str, ...] = ()) -> Callable:
    """Decorator adding one option per setting of `cls` (nested settings included)."""
    options = [o for leaf in leaves(cls) if leaf.name not in skip and (o := option_for(leaf))]

    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def given(flags: dict) -> dict:
    """The options the user gave (None means not given)."""
    return {k: v for k, v in flags.items() if v is not None}


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """An expected error of a command: `error: message` on stderr, exit status `exit_code`."""
    click.echo(f"error: {message}", err=True)
    sys.exit(exit_code)


@contextmanager
def expected_errors() -> Iterator[None]:
    """The CLI's one mapping of expected errors: the package's own (ValuecsvError, with its exit_code)
    and file-system errors (OSError, exit 1) end as `error: message` without a traceback."""
    try:
        yield
    except ValuecsvError as e:
        fail(str(e), e.exit_code)
    except OSError as e:
        fail(str(e))


class Command(click.Command):
    """A click command whose expected errors end as `error: message` and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        with expected_errors():
            return super().invoke(ctx)


class Group(click.Group):
    """A click group whose commands and subgroups are `Command` and `Group`."""

    command_class = Command
    group_class = type

    def invoke(self, ctx: click.Context) -> Any:
        with expected_errors():
            return super().invoke(ctx)
