"""Registries as data from elsewhere: file checksums, safe paths, and registries on object storage.

    files = file_checksums(Path("runs/x"), manifest)       # {"evaluators/freedom/model.safetensors": sha256}
    problems = integrity_problems(Path("runs/x"), manifest)  # [] for an intact registry
    local = fetch_registry("s3://bucket/runs/x")            # cached once per registry_id, checked
    publish_registry(Path("runs/x"), "s3://bucket/runs/x")  # upload, manifest last

A registry fetched from object storage is copied into a local cache folder named by its
registry_id (`$VALUECSV_CACHE`, default ~/.cache/valuecsv-ray, then registries/<id>), written
under a temporary name and renamed when every file is there and matches the sha256 the manifest
records; so Serve replicas and audit actors on any node load the same, complete registry, and
a node that already holds it copies nothing. Every evaluator path must stay inside the
registry folder (no `..`, no absolute path, no symlink out). Only safetensors weights are
loaded (the engine passes use_safetensors=True; no pickle, no remote code). pyarrow's
filesystems (s3://, gs://, file://), as Ray Data and Ray Train use; no torch, no Ray.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path, PurePosixPath

MANIFEST = "manifest.json"
COMPLETE = ".complete"  # marker in a cache folder whose files were all checked
_CHUNK = 1 << 20


def is_uri(path: str | Path) -> bool:
    """s3://, gs://, file:// ... (a Windows drive letter is not a scheme)."""
    text = str(path)
    return "://" in text and len(text.split("://", 1)[0]) > 1


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluator_folders(manifest: dict) -> list[str]:
    """The evaluator folders a manifest points at (relative paths), each once."""
    return sorted({ev["path"] for ev in manifest["evaluators"].values()})


def file_checksums(root: Path, manifest: dict) -> dict[str, str]:
    """sha256 of every file in the manifest's evaluator folders, by POSIX path relative to root."""
    out = {}
    for folder in evaluator_folders(manifest):
        for file in sorted((root / folder).rglob("*")):
            if file.is_file():
                out[file.relative_to(root).as_posix()] = sha256_file(file)
    return out


def unsafe_path(root: Path, relative: str) -> str | None:
    """Why `relative` may not be used inside `root` (None when it may)."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return f"path {relative!r} leaves the registry folder"
    resolved = (root / pure).resolve()
    if not resolved.is_relative_to(root.resolve()):
        return f"path {relative!r} resolves to {resolved}, outside the registry folder (a symlink out?)"
    return None


def integrity_problems(root: Path, manifest: dict) -> list[str]:
    """Unsafe paths, missing files and files whose sha256 is not the recorded one."""
    problems = [p for folder in evaluator_folders(manifest) if (p := unsafe_path(root, folder))]
    recorded = manifest.get("files") or {}
    for relative, expected in recorded.items():
        if (why := unsafe_path(root, relative)) is not None:
            problems.append(why)
        elif not (root / relative).is_file():
            problems.append(f"{root / relative} is missing")
        elif (actual := sha256_file(root / relative)) != expected:
            problems.append(
                f"{root / relative} is not the file the registry was built with "
                f"(sha256 {actual[:12]}..., recorded {expected[:12]}...): corrupted or swapped"
            )
    extra = set(file_checksums(root, manifest)) - set(recorded) if recorded and not problems else set()
    problems += [
        f"{root / rel} is not part of the registry (not in the manifest's files)" for rel in sorted(extra)
    ]
    return problems


def cache_root() -> Path:
    return Path(os.environ.get("VALUECSV_CACHE") or Path.home() / ".cache" / "valuecsv-ray") / "registries"


def _filesystem(uri: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def read_remote_manifest(uri: str) -> dict:
    fs, root = _filesystem(uri)
    try:
        with fs.open_input_stream(f"{root.rstrip('/')}/{MANIFEST}") as fh:
            return json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{uri}/{MANIFEST} cannot be read ({e})") from e


def fetch_registry(uri: str, manifest: dict | None = None) -> Path:
    """The local cache folder of the registry at `uri`, copied there once and checked."""
    manifest = manifest or read_remote_manifest(uri)
    if not manifest.get("files"):
        raise ValueError(
            f"{uri}: the manifest records no file checksums (a registry written before "
            "format 3); rebuild it with `valuecsv-ray train` and publish it again"
        )
    target = cache_root() / manifest["registry_id"]
    if (target / COMPLETE).is_file():
        return target
    fs, root = _filesystem(uri)
    tmp = target.with_name(f"{target.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for relative in manifest["files"]:
        if (why := unsafe_path(tmp, relative)) is not None:
            raise ValueError(f"{uri}: {why}")
        local = tmp / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        _download(fs, root, relative, local)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    problems = integrity_problems(tmp, manifest)
    if problems:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"registry {uri} failed its checks:\n  " + "\n  ".join(problems))
    (tmp / COMPLETE).write_text(uri, encoding="utf-8")
    try:
        os.replace(tmp, target)
    except OSError:  # another process on this node finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _download(fs, root: str, relative: str, local: Path) -> None:
    with fs.open_input_stream(f"{root.rstrip('/')}/{relative}") as src, local.open("wb") as dst:
        while block := src.read(_CHUNK):
            dst.write(block)


def publish_registry(local: Path, uri: str) -> None:
    """Upload a complete local registry to `uri`: the evaluator files, then the manifest (last, so
    a reader never finds a manifest whose files are not there yet)."""
    manifest = json.loads((local / MANIFEST).read_text(encoding="utf-8"))
    fs, root = _filesystem(uri)
    root = root.rstrip("/")
    fs.create_dir(root, recursive=True)
    names = [*manifest.get("files", {}), *[p.name for p in local.glob("*.json") if p.name != MANIFEST]]
    for relative in [*names, MANIFEST]:
        target = f"{root}/{relative}"
        fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
        with (local / relative).open("rb") as src, fs.open_output_stream(target) as dst:
            while block := src.read(_CHUNK):
                dst.write(block)
