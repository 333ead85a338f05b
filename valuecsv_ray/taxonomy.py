"""The value set as data: a taxonomy of labels (id, names, group, dataset column).

    tax = load_taxonomy()                          # the built-in Core Socialist Values
    tax = load_taxonomy("my_values.yaml")          # any other value system
    [label.id for label in tax.members("personal")]

A taxonomy file is YAML: `name`, `title`, `group_kind` (what a group is, e.g. "level"),
`groups` (in display order) and `labels`, each with `id` (snake_case: used in configs, folders,
Parquet columns, HTTP keys), `en`, `zh`, `group` and `column` (its 0/1 column in annotated data).
Training records the taxonomy in the registry's manifest; everything downstream (engine, Serve,
the audit's schema, statistics, report) reads it from there. The twelve Core Socialist Values
(resources/taxonomies/core-socialist-values.yaml) are the default, not an assumption.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import yaml

from valuecsv_ray.errors import ValuecsvError

DEFAULT_TAXONOMY = "core-socialist-values"
_ID = re.compile(r"[a-z][a-z0-9_]*")
_FIELDS = ("id", "en", "zh", "group", "column")


class TaxonomyError(ValuecsvError, ValueError):
    """A taxonomy file or record that cannot be used; the message lists every problem."""


@dataclass(frozen=True)
class Label:
    """One value of a taxonomy."""

    id: str  # stable snake_case id
    en: str  # English name
    zh: str  # Chinese name
    group: str  # one of the taxonomy's groups (for the default: the level)
    column: str  # its 0/1 label column in annotated data

    @property
    def name(self) -> str:
        """'English 中文', for tables."""
        return f"{self.en} {self.zh}".strip()


@dataclass(frozen=True)
class Taxonomy:
    """A label set with its groups, in display order."""

    name: str
    title: str
    group_kind: str
    groups: tuple[str, ...]
    labels: tuple[Label, ...]

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(label.id for label in self.labels)

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(label.column for label in self.labels)

    def get(self, key: str) -> Label:
        """A label by id, English or Chinese name, or dataset column (case and spaces ignored)."""
        wanted = key.strip().casefold()
        for label in self.labels:
            if wanted in {label.id.casefold(), label.en.casefold(), label.zh.casefold(),
                          label.column.casefold()}:
                return label
        raise KeyError(f"unknown value {key!r} in taxonomy {self.name!r}; expected one of: "
                       f"{', '.join(self.ids)}")

    def parse(self, spec: str | list[str] | tuple[str, ...] | None) -> tuple[Label, ...]:
        """'all', a comma list or a list of names, as labels in taxonomy order."""
        if spec is None or spec == "all" or list(spec) == ["all"]:
            return self.labels
        keys = spec.split(",") if isinstance(spec, str) else list(spec)
        chosen = {self.get(k).id for k in keys if k.strip()}
        if not chosen:
            raise KeyError("no values given; use 'all' or a comma list such as "
                           f"'{','.join(self.ids[:2])}'")
        return tuple(label for label in self.labels if label.id in chosen)

    def members(self, group: str) -> tuple[Label, ...]:
        return tuple(label for label in self.labels if label.group == group)

    def group_positions(self) -> dict[str, list[int]]:
        """Column positions (in label order) of each group's labels, groups in order."""
        return {g: [i for i, label in enumerate(self.labels) if label.group == g] for g in self.groups}

    def subset(self, ids: list[str] | tuple[str, ...]) -> Taxonomy:
        """The same taxonomy restricted to `ids` (a registry trained on some values only)."""
        labels = tuple(label for label in self.labels if label.id in set(ids))
        groups = tuple(g for g in self.groups if any(label.group == g for label in labels))
        return Taxonomy(self.name, self.title, self.group_kind, groups, labels)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "group_kind": self.group_kind,
                "groups": list(self.groups), "labels": [asdict(label) for label in self.labels]}

    @classmethod
    def from_dict(cls, record: dict, where: str = "taxonomy") -> Taxonomy:
        """Validate a taxonomy mapping; raises TaxonomyError naming every problem in `where`."""
        if not isinstance(record, dict):
            raise TaxonomyError(f"{where}: expected a mapping with name, groups and labels")
        problems = [f"missing key {k!r}" for k in ("name", "groups", "labels") if k not in record]
        groups = record.get("groups") or []
        raw_labels = record.get("labels") or []
        if not isinstance(groups, list) or not all(isinstance(g, str) and g for g in groups):
            problems.append("groups must be a list of names")
            groups = []
        if not isinstance(raw_labels, list) or not raw_labels:
            problems.append("labels must be a non-empty list")
            raw_labels = []
        labels = []
        for i, raw in enumerate(raw_labels):
            missing = [k for k in ("id", "group", "column") if not (isinstance(raw, dict) and raw.get(k))]
            if missing:
                problems.append(f"labels[{i}]: missing {', '.join(missing)}")
                continue
            blank = {"en": raw["id"]}  # a blank English name falls back to the id, others to ""
            label = Label(**{k: str(raw[k]) if raw.get(k) not in (None, "") else blank.get(k, "")
                             for k in _FIELDS})
            if not _ID.fullmatch(label.id):
                problems.append(f"labels[{i}]: id {label.id!r} must be snake_case (a-z, 0-9, _)")
            if label.group not in groups:
                problems.append(f"labels[{i}] ({label.id}): group {label.group!r} is not in groups {groups}")
            labels.append(label)
        for attr in ("id", "column"):
            seen = [getattr(label, attr) for label in labels]
            twice = sorted({v for v in seen if seen.count(v) > 1})
            problems += [f"{attr} {v!r} is used twice" for v in twice]
        problems += [f"group {g!r} has no labels" for g in groups if labels and not any(
            label.group == g for label in labels)]
        if problems:
            raise TaxonomyError(f"{where}: invalid taxonomy:\n  " + "\n  ".join(problems))
        return cls(name=str(record["name"]), title=str(record.get("title") or record["name"]),
                   group_kind=str(record.get("group_kind") or "group"), groups=tuple(groups),
                   labels=tuple(labels))


def builtin_path(name: str = DEFAULT_TAXONOMY) -> Path:
    return Path(str(resources.files("valuecsv_ray") / "resources" / "taxonomies" / f"{name}.yaml"))


def load_taxonomy(spec: str | Path | None = None) -> Taxonomy:
    """The built-in taxonomy named `spec` (default: the Core Socialist Values) or a YAML file."""
    spec = str(spec or DEFAULT_TAXONOMY)
    path = builtin_path(spec) if "/" not in spec and not spec.endswith((".yaml", ".yml")) else Path(spec)
    if not path.is_file():
        raise TaxonomyError(f"taxonomy {spec!r}: no such built-in taxonomy or file ({path}); give a YAML "
                            f"file (see {builtin_path()}) or '{DEFAULT_TAXONOMY}'")
    try:
        record = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise TaxonomyError(f"cannot read taxonomy file {path}: {e}") from e
    return Taxonomy.from_dict(record, where=str(path))
