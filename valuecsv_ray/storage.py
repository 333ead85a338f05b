"""Output folders on the local disk or object storage (s3://, gs://), through pyarrow's filesystems.

    out = "s3://bucket/audit/run1"                      # or "audit/run1"
    write_json(join(out, "summary.json"), {...})         # whole object / temp file + rename
    files = parquet_files(join(out, "scores"))           # [(filesystem, path), ...]
    table = read_parquet(join(out, "scores"), columns=["model"])

Folders are strings (a path or a URI) joined with "/", so the same code writes to either. Local
writes go to a temporary name and are renamed; on object storage an object appears under its
final name only when its upload completed, so readers never see half a file. The same
filesystems Ray Data and Ray Train use; credentials and endpoints come from the environment
(AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL ...). No torch, no Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq


def is_uri(path: str | Path) -> bool:
    """s3://, gs://, file:// ... (a Windows drive letter is not a scheme)."""
    text = str(path)
    return "://" in text and len(text.split("://", 1)[0]) > 1


def cache_root() -> Path:
    """Where registries copied from object storage are kept on this node ($VALUECSV_CACHE)."""
    return Path(os.environ.get("VALUECSV_CACHE") or Path.home() / ".cache" / "valuecsv-ray") / "registries"


def resolve(spec: str | Path) -> tuple[pafs.FileSystem, str]:
    """The filesystem and the path inside it of a local path or a URI."""
    if is_uri(spec):
        return pafs.FileSystem.from_uri(str(spec))
    return pafs.LocalFileSystem(), os.path.abspath(str(spec))


def join(spec: str | Path, *names: str) -> str:
    return "/".join([str(spec).rstrip("/"), *names])


def located(spec: str | Path) -> Path | str:
    """A local folder or file as a Path, a URI as its string (what functions hand back)."""
    return str(spec) if is_uri(spec) else Path(spec)


def exists(spec: str | Path) -> bool:
    fs, path = resolve(spec)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_file(spec: str | Path) -> bool:
    fs, path = resolve(spec)
    return fs.get_file_info(path).type == pafs.FileType.File


def make_dirs(spec: str | Path) -> None:
    fs, path = resolve(spec)
    fs.create_dir(path, recursive=True)


def read_text(spec: str | Path) -> str:
    fs, path = resolve(spec)
    with fs.open_input_stream(path) as fh:
        return fh.read().decode("utf-8")


def write_bytes(spec: str | Path, data: bytes) -> None:
    """Write a whole file: a temporary name and a rename locally, one upload on object storage.

    The temporary name is unique (`<name>.<pid>.<random>.tmp`), so two writers of one file never
    share it: the last rename wins and a reader sees one whole version or the other."""
    if not is_uri(spec):
        path = Path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            with tmp.open("xb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return
    fs, path = resolve(spec)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as fh:
        fh.write(data)


def write_text(spec: str | Path, text: str) -> None:
    write_bytes(spec, text.encode("utf-8"))


def write_json(spec: str | Path, payload: Any, default: Callable[[Any], Any] | None = None) -> None:
    """A JSON record (manifest, summary, cache entry ...), UTF-8 and indented, whole or not at all."""
    write_text(spec, json.dumps(payload, ensure_ascii=False, indent=2, default=default) + "\n")


def read_json(spec: str | Path) -> Any:
    return json.loads(read_text(spec))


def write_table(table: pa.Table, spec: str | Path) -> None:
    """A Parquet file, whole or not at all (as write_bytes)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes(spec, sink.getvalue().to_pybytes())


def parquet_files(folder: str | Path) -> list[tuple[pafs.FileSystem, str]]:
    """The Parquet files directly in a folder, sorted; none when the folder does not exist."""
    fs, path = resolve(folder)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return [
        (fs, i.path)
        for i in sorted(infos, key=lambda i: i.path)
        if i.type == pafs.FileType.File and i.path.endswith(".parquet")
    ]


def leftovers(folder: str | Path) -> list[tuple[pafs.FileSystem, str]]:
    """Temporary files of local writes cut off before their rename."""
    fs, path = resolve(folder)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return [(fs, i.path) for i in infos if i.type == pafs.FileType.File and i.path.endswith(".tmp")]


def read_parquet(folder: str | Path, columns: list[str] | None = None) -> pa.Table | None:
    """Every Parquet file of a folder as one table (None when there is none)."""
    tables = [pq.read_table(path, columns=columns, filesystem=fs) for fs, path in parquet_files(folder)]
    return pa.concat_tables(tables) if tables else None


@contextmanager
def local_folder(spec: str | Path):
    """A local folder to write into: `spec` itself when local, else a temporary one whose files
    are uploaded to `spec` when the block ends without an error."""
    if not is_uri(spec):
        Path(spec).mkdir(parents=True, exist_ok=True)
        yield Path(spec)
        return
    tmp = Path(tempfile.mkdtemp(prefix="valuecsv-upload-"))
    try:
        yield tmp
        for file in sorted(tmp.rglob("*")):
            if file.is_file():
                write_bytes(join(spec, file.relative_to(tmp).as_posix()), file.read_bytes())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
