"""Download the project's public data files into a folder and check each one's sha256.

    path = fetch("quest100", Path("data"))        # also "valuecsv5000", "cvalues-responsibility"
    path = fetch_valuecsv5000(Path("data"))       # the annotated training data

To download from a mirror, set VALUECSV_FETCH_BASE_URL (e.g. https://mirror.example/valuecsv): it
replaces everything before the file name in every known URL; the sha256 checks still apply.
"""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from valuecsv_ray.errors import ValuecsvError

BASE_URL_ENV = "VALUECSV_FETCH_BASE_URL"


@dataclass(frozen=True)
class KnownFile:
    """A public file this project downloads: where it lives, what it must hash to, its licence."""

    filename: str
    url: str
    sha256: str
    source: str  # licence and where to download it by hand


KNOWN_FILES = {
    "valuecsv5000": KnownFile(
        "ValueCSV5000.xlsx",
        "https://raw.githubusercontent.com/ValueCSV/ValueCSV/main/Dataset/ValueCSV5000.xlsx",
        "121b4d2048e78ce962e6e2fb9ebc8c579aae55c0f7e48c8ec0911844a76f1901",
        "CC BY 4.0, github.com/ValueCSV/ValueCSV, Dataset/ValueCSV5000.xlsx",
    ),
    "quest100": KnownFile(
        "quest100.xlsx",
        "https://raw.githubusercontent.com/ValueCSV/ValueCSV/main/Dataset/quest100.xlsx",
        "711be47a2df9d6943a091a671e4d3162f6cdc0a7f010833f87b7a05a064163fb",
        "CC BY 4.0, github.com/ValueCSV/ValueCSV, Dataset/quest100.xlsx",
    ),
    "cvalues-responsibility": KnownFile(
        "cvalues_responsibility_prompts.jsonl",
        "https://raw.githubusercontent.com/X-PLUG/CValues/main/dataset/cvalues_responsibility_prompts.jsonl",
        "ee99050d4a8933829697c796e279b83795838feacefc84cdd06856bad01bfff4",
        "Apache-2.0, github.com/X-PLUG/CValues, dataset/cvalues_responsibility_prompts.jsonl",
    ),
}
FILENAME = KNOWN_FILES["valuecsv5000"].filename
VALUECSV5000_URL = KNOWN_FILES["valuecsv5000"].url
VALUECSV5000_SHA256 = KNOWN_FILES["valuecsv5000"].sha256


class FetchError(ValuecsvError, RuntimeError):
    """The download failed or gave a file with the wrong checksum."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_url(name: str) -> str:
    """The known file's URL, or its file name under VALUECSV_FETCH_BASE_URL when that is set."""
    known = KNOWN_FILES[name]
    base = os.environ.get(BASE_URL_ENV)
    return f"{base.rstrip('/')}/{known.filename}" if base else known.url


def fetch(name: str, dest_dir: Path, url: str | None = None, timeout: float = 30) -> Path:
    """Download known file `name` into dest_dir (skipped when a file with the right checksum is there)."""
    if name not in KNOWN_FILES:
        raise FetchError(f"unknown data file {name!r}; known: {', '.join(KNOWN_FILES)}")
    known = KNOWN_FILES[name]
    url = url or default_url(name)
    target = Path(dest_dir) / known.filename
    if target.is_file() and sha256_of(target) == known.sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        _download(url, partial, timeout, known.filename)
    except (urllib.error.URLError, OSError) as e:
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"could not download {url}: {e}. Without network access, download {known.filename} "
            f"elsewhere ({known.source}) and put it at {target}; its sha256 must be {known.sha256}."
        ) from e
    digest = sha256_of(partial)
    if digest != known.sha256:
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"{url} gave a {known.filename} with sha256 {digest}, expected {known.sha256}; the upstream "
            f"file changed or the download was corrupted. Nothing was saved: retry, or download it by "
            f"hand ({known.source}) and put it at {target}."
        )
    partial.replace(target)
    return target


def _download(url: str, partial: Path, timeout: float, desc: str) -> None:
    with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
        size = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=size, unit="B", unit_scale=True, desc=desc) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                bar.update(len(block))


def fetch_valuecsv5000(dest_dir: Path, url: str | None = None, timeout: float = 30) -> Path:
    """Download ValueCSV5000.xlsx into dest_dir; see `fetch`."""
    return fetch("valuecsv5000", dest_dir, url, timeout)
