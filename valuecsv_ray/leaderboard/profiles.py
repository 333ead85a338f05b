"""Weight profiles: how much each value of the taxonomy counts in a leaderboard score.

    profile = load_profile("uniform", taxonomy)            # a preset
    profile = load_profile("profiles/civic.yaml", taxonomy)  # a YAML file
    profile.vector(taxonomy)                               # weights in taxonomy order

A profile file is YAML with `name`, optional `description`, optional `default` (the weight of any
value not listed; 1.0 if absent), optional `groups: {group: weight}` and `values: {value_id: weight}`.
A value's weight is its `values` entry if listed, else its group's `groups` entry if listed, else
`default`. Weights are numbers >= 0, not all zero.

Presets come from the taxonomy, never from a list of names in code: `uniform` (every value weighs
1), one preset per group, named after the group (its values weigh 1, the others 0), and the preset
files that ship beside the taxonomy, resources/profiles/<taxonomy name>/<preset>.yaml (profile
files named after the preset; adding a preset is adding one file there). A group that is itself
called `uniform` is reached through a YAML file instead. `valuecsv-ray profiles` lists them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from valuecsv_ray.errors import ValuecsvError
from valuecsv_ray.taxonomy import Taxonomy, builtin_path, load_taxonomy

UNIFORM = "uniform"  # the preset in which every value weighs 1
PROFILE_KEYS = ("name", "description", "default", "groups", "values")  # the keys a profile file may hold
SHIPPED = "preset file"  # the source of a shipped preset: "preset file <taxonomy>/<preset>.yaml"
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # a taxonomy name that can name a folder


class LeaderboardError(ValuecsvError, ValueError):
    """A profile, scores folder or comparison that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Profile:
    """A named weighting of the taxonomy's values."""

    name: str  # shown in tables and charts; unique within one leaderboard
    weights: dict[str, float] = field(default_factory=dict)  # value id -> weight, every value listed
    description: str = ""  # one line for people
    source: str = "preset"  # "preset" (made from the taxonomy), SHIPPED + " <file>", or the YAML file given

    def vector(self, taxonomy: Taxonomy) -> np.ndarray:
        """The weights in taxonomy order."""
        return np.array([self.weights[v] for v in taxonomy.ids], dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "source": self.source,
                "weights": dict(self.weights)}


def presets(taxonomy: Taxonomy) -> dict[str, Profile]:
    """`uniform`, one preset per group of `taxonomy` (weight 1 for the group's values, 0 elsewhere),
    then the preset files shipped for it (shipped_presets)."""
    found = {UNIFORM: Profile(UNIFORM, {v: 1.0 for v in taxonomy.ids}, "Every value weighs 1")}
    for group in taxonomy.groups:
        if group == UNIFORM:
            continue
        members = {label.id for label in taxonomy.members(group)}
        found[group] = Profile(
            group, {v: float(v in members) for v in taxonomy.ids},
            f"Only the {taxonomy.group_kind} {group!r}: its values weigh 1, the others 0")
    for profile in shipped_presets(taxonomy):
        if profile.name in found:
            raise LeaderboardError(f"{shipped_path(taxonomy.name, profile.name)}: preset {profile.name!r} "
                                   "has the name of a preset made from the taxonomy; rename the file")
        found[profile.name] = profile
    return found


def presets_dir(taxonomy_name: str) -> Path | None:
    """valuecsv_ray/resources/profiles/<taxonomy_name>/, where that taxonomy's preset files ship."""
    if not _SAFE_NAME.fullmatch(taxonomy_name):
        return None
    return Path(str(resources.files("valuecsv_ray") / "resources" / "profiles" / taxonomy_name))


def shipped_path(taxonomy_name: str, preset: str) -> Path:
    """The file of a shipped preset."""
    return presets_dir(taxonomy_name) / f"{preset}.yaml"


def shipped_presets(taxonomy: Taxonomy) -> list[Profile]:
    """The preset files of `taxonomy` (sorted by name), each checked against the full built-in taxonomy
    of that name (a registry may hold some of its values only), then restricted to `taxonomy`'s values.
    A preset that gives every value of `taxonomy` weight 0 is left out: it cannot rank these values."""
    folder = presets_dir(taxonomy.name)
    if folder is None or not folder.is_dir():
        return []
    full = _full_taxonomy(taxonomy)
    found = []
    for path in sorted(folder.glob("*.yaml")):
        profile = _read_profile_file(path, full)
        if profile.name != path.stem:
            raise LeaderboardError(f"{path}: key 'name': {profile.name!r} must be the file's name "
                                   f"{path.stem!r}; a preset is picked by the name of its file")
        weights = {v: profile.weights[v] for v in taxonomy.ids}
        if any(weights.values()):
            found.append(Profile(profile.name, weights, profile.description,
                                 f"{SHIPPED} {taxonomy.name}/{path.name}"))
    return found


def _full_taxonomy(taxonomy: Taxonomy) -> Taxonomy:
    """The built-in taxonomy `taxonomy` is a subset of (same name, every value in it), else itself."""
    if not builtin_path(taxonomy.name).is_file():
        return taxonomy
    full = load_taxonomy(taxonomy.name)
    return full if set(taxonomy.ids) <= set(full.ids) else taxonomy


def load_profile(spec: str, taxonomy: Taxonomy) -> Profile:
    """The preset named `spec`, or the profile in the YAML file `spec`; raises LeaderboardError."""
    known = presets(taxonomy)
    if spec in known:
        return known[spec]
    path = Path(spec)
    if not path.is_file():
        raise LeaderboardError(
            f"profile {spec!r}: neither a preset of taxonomy {taxonomy.name!r} ({', '.join(known)}) "
            "nor a YAML file; `valuecsv-ray profiles` lists the presets")
    return _read_profile_file(path, taxonomy)


def _read_profile_file(path: Path, taxonomy: Taxonomy) -> Profile:
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise LeaderboardError(f"profile file {path}: cannot read it as YAML ({e})") from e
    return profile_from_dict(record, taxonomy, where=str(path))


def load_profiles(specs: list[str] | tuple[str, ...], taxonomy: Taxonomy) -> list[Profile]:
    """Several profiles (presets or files), refusing two with the same name."""
    profiles = [load_profile(s, taxonomy) for s in specs]
    names = [p.name for p in profiles]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise LeaderboardError(f"profile name(s) {', '.join(twice)} given more than once; "
                               "each profile in a leaderboard needs its own name")
    return profiles


def profile_from_dict(record: Any, taxonomy: Taxonomy, where: str = "profile") -> Profile:
    """Validate a profile mapping; raises LeaderboardError listing every problem found in `where`."""
    if not isinstance(record, dict):
        raise LeaderboardError(f"{where}: expected a mapping with keys {', '.join(PROFILE_KEYS)}")
    problems = [f"unknown key {k!r}; expected {', '.join(PROFILE_KEYS)}" for k in record
                if k not in PROFILE_KEYS]
    name = record.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append("key 'name': give the profile a name (a non-empty string)")
    default = _weight(record.get("default", 1.0), "default", problems)
    groups = _weights(record, "groups", taxonomy.groups, f"{taxonomy.group_kind}s", problems)
    values = _weights(record, "values", taxonomy.ids, "value ids", problems)
    weights = {label.id: values.get(label.id, groups.get(label.group, default))
               for label in taxonomy.labels}
    if not problems and not any(weights.values()):
        problems.append("every value's weight is 0; give at least one value a positive weight")
    if problems:
        raise LeaderboardError(f"{where}: invalid weight profile:\n  " + "\n  ".join(problems))
    return Profile(name.strip(), weights, str(record.get("description") or ""), where)


def _weights(record: dict, key: str, known: tuple[str, ...], kind: str, problems: list[str]) -> dict:
    """The `key` mapping of a profile (groups or values) with each weight checked."""
    raw = record.get(key) or {}
    if not isinstance(raw, dict):
        problems.append(f"key {key!r}: expected a mapping of name: weight, got {raw!r}")
        return {}
    checked = {}
    for name, value in raw.items():
        if name not in known:
            problems.append(f"{key}.{name}: unknown {kind[:-1]} {name!r}; known {kind}: {', '.join(known)}")
        checked[name] = _weight(value, f"{key}.{name}", problems)
    return checked


def _weight(value: Any, key: str, problems: list[str]) -> float:
    """A weight as a float, or 0.0 with the problem recorded (a number, finite, >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        problems.append(f"{key}: weight {value!r} is not a number")
        return 0.0
    if not math.isfinite(value) or value < 0:
        problems.append(f"{key}: weight {value!r} must be a finite number >= 0")
        return 0.0
    return float(value)


def origin(profile: Profile, taxonomy: Taxonomy) -> str:
    """Where a profile comes from, for people: the taxonomy, one of its groups, or a file."""
    if profile.source.startswith(SHIPPED):
        return profile.source.removeprefix("preset ")  # "file <taxonomy>/<preset>.yaml"
    if profile.source != "preset":
        return profile.source
    return "taxonomy" if profile.name == UNIFORM else f"{taxonomy.group_kind} {profile.name}"


def weights_summary(profile: Profile, taxonomy: Taxonomy) -> str:
    """The weights in a line: values sharing a weight together, highest first, the most common
    weight as 'others' (e.g. 'rule_of_law 4; freedom, equality, justice 2; others 1')."""
    by_weight: dict[float, list[str]] = {}
    for value in taxonomy.ids:
        by_weight.setdefault(profile.weights[value], []).append(value)
    if len(by_weight) == 1:
        return f"every value {next(iter(by_weight)):g}"
    common = max(by_weight, key=lambda w: len(by_weight[w]))
    parts = [f"{', '.join(by_weight[w])} {w:g}" for w in sorted(by_weight, reverse=True) if w != common]
    return "; ".join([*parts, f"others {common:g}"])
