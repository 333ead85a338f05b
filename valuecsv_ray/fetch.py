"""Download ValueCSV5000.xlsx (CC BY 4.0, github.com/ValueCSV/ValueCSV) and check its sha256.

    path = fetch_valuecsv5000(Path("data"))
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

VALUECSV5000_URL = "https://raw.githubusercontent.com/ValueCSV/ValueCSV/main/Dataset/ValueCSV5000.xlsx"
VALUECSV5000_SHA256 = "121b4d2048e78ce962e6e2fb9ebc8c579aae55c0f7e48c8ec0911844a76f1901"
FILENAME = "ValueCSV5000.xlsx"


class FetchError(RuntimeError):
    """The download failed or gave a file with the wrong checksum."""


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_valuecsv5000(dest_dir: Path, url: str = VALUECSV5000_URL, timeout: float = 30) -> Path:
    """Download into dest_dir (skipped when a file with the right checksum is there)."""
    target = dest_dir / FILENAME
    if target.is_file() and sha256_of(target) == VALUECSV5000_SHA256:
        return target
    dest_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".xlsx.partial")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, partial.open("wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, unit="B", unit_scale=True, desc=FILENAME) as bar:
                for block in iter(lambda: response.read(1 << 16), b""):
                    out.write(block)
                    bar.update(len(block))
    except (urllib.error.URLError, OSError) as e:
        partial.unlink(missing_ok=True)
        raise FetchError(
            f"could not download {url}: {e}. Without network access, download {FILENAME} "
            f"elsewhere (from github.com/ValueCSV/ValueCSV, Dataset/) and put it at {target}; "
            f"its sha256 must be {VALUECSV5000_SHA256}."
        ) from e
    digest = sha256_of(partial)
    if digest != VALUECSV5000_SHA256:
        partial.unlink(missing_ok=True)
        raise FetchError(f"{url} gave a file with sha256 {digest}, expected {VALUECSV5000_SHA256}; "
                         "the upstream file changed or the download was corrupted. Nothing was saved.")
    partial.replace(target)
    return target
