"""The twelve Core Socialist Values, defined once for the whole project.

    from valuecsv_ray.taxonomy import VALUES, Level, value_by_id
    [v.id for v in VALUES if v.level is Level.PERSONAL]

Every other module refers to values through this table (ids, names, levels and the
ValueCSV5000 column names); none spells a value name itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Level(str, Enum):
    """The three levels at which the values are stated."""

    NATIONAL = "national"
    SOCIETAL = "societal"
    PERSONAL = "personal"


@dataclass(frozen=True)
class Value:
    """One Core Socialist Value."""

    id: str  # stable snake_case id used in configs, folders, Parquet columns, HTTP keys
    en: str  # English name as in the ValueCSV paper
    zh: str  # Chinese name
    level: Level
    column: str  # label column in ValueCSV5000.xlsx


def _v(id_: str, en: str, zh: str, level: Level) -> Value:
    return Value(id=id_, en=en, zh=zh, level=level, column=f"{en}_scr")


VALUES: tuple[Value, ...] = (
    _v("prosperity", "Prosperity", "富强", Level.NATIONAL),
    _v("democracy", "Democracy", "民主", Level.NATIONAL),
    _v("civility", "Civility", "文明", Level.NATIONAL),
    _v("harmony", "Harmony", "和谐", Level.NATIONAL),
    _v("freedom", "Freedom", "自由", Level.SOCIETAL),
    _v("equality", "Equality", "平等", Level.SOCIETAL),
    _v("justice", "Justice", "公正", Level.SOCIETAL),
    _v("rule_of_law", "Rule of Law", "法治", Level.SOCIETAL),
    _v("patriotism", "Patriotism", "爱国", Level.PERSONAL),
    _v("dedication", "Dedication", "敬业", Level.PERSONAL),
    _v("integrity", "Integrity", "诚信", Level.PERSONAL),
    _v("friendliness", "Friendliness", "友善", Level.PERSONAL),
)

VALUE_IDS: tuple[str, ...] = tuple(v.id for v in VALUES)
LABEL_COLUMNS: tuple[str, ...] = tuple(v.column for v in VALUES)
_BY_KEY: dict[str, Value] = {
    key.casefold(): v for v in VALUES for key in (v.id, v.en, v.zh, v.column)
}


def value_by_id(key: str) -> Value:
    """Look a value up by id, English or Chinese name, or dataset column."""
    try:
        return _BY_KEY[key.strip().casefold()]
    except KeyError:
        raise KeyError(
            f"unknown value {key!r}; expected one of: {', '.join(VALUE_IDS)}"
        ) from None


def parse_values(spec: str | list[str] | tuple[str, ...] | None) -> tuple[Value, ...]:
    """Turn 'all', a comma list or a list of names into values, in canonical order."""
    if spec is None or spec == "all" or spec == ["all"]:
        return VALUES
    keys = spec.split(",") if isinstance(spec, str) else list(spec)
    chosen = {value_by_id(k).id for k in keys if k.strip()}
    if not chosen:
        raise KeyError("no values given; use 'all' or a comma list such as 'freedom,justice'")
    return tuple(v for v in VALUES if v.id in chosen)
