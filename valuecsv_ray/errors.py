"""The base class of the package's expected errors, which the CLI turns into a message and an exit code.

    class RegistryError(ValuecsvError, RuntimeError): ...

An expected error is one a user can act on (a missing file, a bad row, a registry that does not load):
the CLI prints `error: <message>` on stderr and exits with the class's `exit_code`, without a traceback.
Each class keeps its own builtin base as well, so `except ValueError` / `except RuntimeError` still works.
"""

from __future__ import annotations


class ValuecsvError(Exception):
    """An expected error of valuecsv-ray; its message says what went wrong, where and how to fix it."""

    exit_code: int = 1  # the CLI's exit status for this error
