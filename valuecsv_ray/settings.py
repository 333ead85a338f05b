"""How settings are declared, loaded and compared; the settings themselves are in `config/`.

    @dataclass(frozen=True)
    class Thing:
        size: int = setting(8, "rows per batch")                       # part of a run's identity
        threads: int | None = setting(None, "CPU threads", identity=False)  # a runtime knob
        spec: Spec = nested(Spec, "where the columns are")               # held, not copied

Each setting is declared once, as a dataclass field with its default, its help and whether it
belongs to a run's identity. YAML keys, `--set KEY=VALUE`, the CLI's options and help texts
(`cli.options`) and the resume checks (`runtime_keys`) all derive from that declaration.
YAML files and overrides are flat: a nested settings class's fields are top-level keys.
Every problem in a config is reported at once, naming the key and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from valuecsv_ray.errors import ValuecsvError


class ConfigError(ValuecsvError, ValueError):
    """One or more invalid settings; the message lists all of them."""


def setting(default: Any, help: str, *, identity: bool = True, cli: bool = True) -> Any:
    """A settings field: `identity` False marks a runtime knob a resumed run may change;
    `cli` False keeps it off the command line (it stays reachable through --set and YAML)."""
    meta = {"help": help, "identity": identity, "cli": cli}
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def nested(cls: type, help: str) -> Any:
    """A field holding another settings class (its fields are flat keys of this one)."""
    return field(default_factory=cls, metadata={"help": help, "nested": True})


@dataclass(frozen=True)
class Leaf:
    """One declared setting: its key, type, default, help and owner class."""

    name: str
    type: Any
    default: Any
    help: str
    identity: bool
    cli: bool
    owner: type


def leaves(cls: type) -> list[Leaf]:
    """Every setting of `cls`, nested classes expanded in place."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        if f.metadata.get("nested"):
            out += leaves(hints[f.name])
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        out.append(Leaf(f.name, hints[f.name], default, f.metadata.get("help", ""),
                        f.metadata.get("identity", True), f.metadata.get("cli", True), cls))
    return out


def runtime_keys(cls: type) -> tuple[str, ...]:
    """Settings that change no result: a resumed run may change them."""
    return tuple(leaf.name for leaf in leaves(cls) if not leaf.identity)


def flatten(cfg: Any) -> dict:
    """A settings object as one flat {key: value} mapping (what YAML and records hold)."""
    out = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        out.update(flatten(value) if f.metadata.get("nested") else {f.name: _plain(value)})
    return out


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def changed_settings(old: dict, new: dict, runtime: tuple[str, ...]) -> list[str]:
    """Keys whose values differ between two flat records, leaving out `runtime` keys."""
    return [k for k in sorted(set(old) | set(new)) if k not in runtime and old.get(k) != new.get(k)]


def parse_overrides(pairs: tuple[str, ...] | list[str]) -> dict:
    """'key=value' strings into a dict; values are parsed as YAML (3 -> int, [a, b] -> list)."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set max_epochs=3")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping of settings; ConfigError naming the file otherwise."""
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from e
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
    return loaded


def load_settings(cls: type, kind: str, path: str | Path | None = None, overrides: dict | None = None):
    """Defaults, then the YAML file, then overrides (None values ignored); raises ConfigError
    listing every unknown key and every invalid value."""
    from_file = read_yaml(path) if path is not None else {}
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    known = {leaf.name for leaf in leaves(cls)}
    errors = _unknown(from_file, known, f" in {path}") + _unknown(given, known, "")
    return build(cls, kind, {**from_file, **given}, errors=errors)


def _unknown(settings: dict, known: set[str], where: str) -> list[str]:
    out = []
    for key in settings:
        if key not in known:
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
            out.append(f"unknown setting {key!r}{where}{suggestion}")
    return out


def build(cls: type, kind: str, settings: dict, where: str = "", errors: list[str] | None = None):
    """`cls` from a flat mapping; ConfigError listing every problem (`errors`: found before)."""
    known = {leaf.name: leaf for leaf in leaves(cls)}
    errors = list(errors) if errors is not None else _unknown(settings, set(known), where)
    values = {k: _coerce(v, known[k].type) for k, v in settings.items() if k in known}
    cfg = _construct(cls, values)
    errors += _problems(cfg)
    if errors:
        raise ConfigError(f"invalid {kind} config:\n  " + "\n  ".join(errors))
    return cfg


def _construct(cls: type, values: dict):
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in fields(cls):
        if f.metadata.get("nested"):
            kwargs[f.name] = _construct(hints[f.name], values)
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def _problems(cfg: Any) -> list[str]:
    out = []
    for f in fields(cfg):
        if f.metadata.get("nested"):
            out += _problems(getattr(cfg, f.name))
    return out + (cfg.problems() if hasattr(cfg, "problems") else [])


def _coerce(value: Any, type_: Any) -> Any:
    """YAML 1.1 reads '1e-3' as a string: number-like strings become floats for float settings;
    a list given for a text setting (`values: [a, b]`) becomes its comma form ("a,b")."""
    if isinstance(value, (list, tuple)) and _members(type_) == (str,):
        return ",".join(map(str, value))
    if isinstance(value, str) and float in _members(type_):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _members(type_: Any) -> tuple:
    return typing.get_args(type_) or (type_,)


def is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def is_number(value: Any, minimum: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= minimum
