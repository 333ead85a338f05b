"""Input files of an audit: files, folders, globs and URIs expanded to the files to read.

    paths = expand_inputs(["answers/", "s3://bucket/outputs/**/*.jsonl"])

Folders are searched recursively for the formats of `valuecsv_ray.tables.FORMATS`; hidden entries
and Excel lock files are left out. A spec that matches nothing is an error naming it.
URIs are listed through pyarrow's filesystems, the one filesystem layer that storage, Ray Data and
Ray Train use (fsspec's glob would need s3fs/gcsfs as a second one), and matched with glob's rules.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs

from valuecsv_ray.audit.readers import InputError
from valuecsv_ray.tables import FORMATS, TableError, format_of

_HINT = "pass a file, a folder, a glob such as 'data/**/*.jsonl' (quoted) or a URI such as s3://bucket/dir/"


def expand_inputs(specs: list[str]) -> list[str]:
    """Input files (paths or URIs) from files, folders, globs (`*`, `?`, `**`) and URIs, sorted, once each.

    Folders are searched recursively for the supported suffixes, leaving out hidden entries and
    Excel lock files (~$*). Raises InputError for a spec that matches nothing.
    """
    found: set[str] = set()
    for spec in specs:
        found.update(_expand_uri(spec) if "://" in spec else map(os.path.normpath, _expand_local(spec)))
    return sorted(found)


def _wanted(relative: str) -> bool:
    """A listed file to read: a supported suffix, not hidden, not an Excel lock file."""
    parts = PurePosixPath(relative.replace(os.sep, "/")).parts
    hidden = any(p.startswith(".") for p in parts) or parts[-1].startswith("~$")
    return not hidden and PurePosixPath(parts[-1]).suffix.lower() in FORMATS


def _nothing_found(spec: str, kind: str) -> InputError:
    verb = "matches" if kind == "glob" else "holds"
    return InputError(f"input {kind} {spec!r} {verb} no {'/'.join(sorted(FORMATS))} files: {_HINT}")


def _check_format(path: str) -> None:
    try:
        format_of(path)
    except TableError as e:
        raise InputError(str(e)) from e


def _expand_local(spec: str) -> list[str]:
    if "*" in spec or "?" in spec:
        matches = glob.glob(spec, recursive=True)  # `*` skips hidden names itself
        matches = [p for p in matches if os.path.isfile(p) and _wanted(os.path.basename(p))]
        if not matches:
            raise _nothing_found(spec, "glob")
        return matches
    if os.path.isfile(spec):
        _check_format(spec)
        return [spec]
    if os.path.isdir(spec):
        root = Path(spec)
        matches = [str(p) for p in root.rglob("*") if p.is_file() and _wanted(str(p.relative_to(root)))]
        if not matches:
            raise _nothing_found(spec, "folder")
        return matches
    raise InputError(f"input {spec!r} does not exist: {_HINT}")


def _expand_uri(spec: str) -> list[str]:
    glob_at = min((i for i in (spec.find("*"), spec.find("?")) if i >= 0), default=-1)
    base_uri = spec if glob_at < 0 else spec[: spec.rfind("/", 0, glob_at) + 1]
    try:
        fs, base = pafs.FileSystem.from_uri(base_uri)
        info = fs.get_file_info(base)
    except (pa.ArrowException, OSError, ValueError) as e:
        raise InputError(f"input {spec!r}: cannot open it with pyarrow.fs ({e}); check the URI") from e
    if glob_at < 0 and info.type == pafs.FileType.File:
        _check_format(spec)
        return [spec]
    if info.type != pafs.FileType.Directory:
        raise InputError(f"input {spec!r} does not exist: {_HINT}")
    parsed = urlparse(base_uri)  # s3://bucket/x -> "bucket/x", file:///x -> "/x", hdfs://host/x -> "/x"
    authority = "" if parsed.netloc and base.startswith(parsed.netloc) else parsed.netloc
    prefix = f"{parsed.scheme}://{authority}"
    pattern = _glob_regex(spec[len(base_uri):]) if glob_at >= 0 else None
    matches = []
    for entry in fs.get_file_info(pafs.FileSelector(base, recursive=True)):
        relative = entry.path[len(base):].lstrip("/")
        if entry.type == pafs.FileType.File and _wanted(relative):
            if pattern is None or pattern.fullmatch(relative):
                matches.append(prefix + entry.path)
    if not matches:
        raise _nothing_found(spec, "glob" if pattern else "folder")
    return matches


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """`*` and `?` within one path part, `**` across parts (as glob.glob with recursive=True)."""
    tokens = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    parts = re.split(r"(\*\*/|\*\*|\*|\?)", pattern)
    return re.compile("".join(tokens.get(p, re.escape(p)) for p in parts))
