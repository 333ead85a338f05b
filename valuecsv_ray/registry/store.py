"""Registries as data from elsewhere: file checksums, safe paths, and registries on object storage.

    files = file_checksums(Path("runs/x"), manifest)       # {"evaluators/freedom/model.safetensors": sha256}
    problems = integrity_problems(Path("runs/x"), manifest)  # [] for an intact registry
    integrity_problems(Path("runs/x"), manifest, remember=True)  # hashes only what changed since
    local = cache_registry("s3://bucket/runs/x")            # cached once per registry_id, checked
    publish_registry(Path("runs/x"), "s3://bucket/runs/x")  # upload, manifest last

A registry fetched from object storage is copied into a local cache folder named by its
registry_id (`$VALUECSV_CACHE`, default ~/.cache/valuecsv-ray, then registries/<id>), written
under a temporary name and renamed when every file is there and matches the sha256 the manifest
records; so Serve replicas and audit actors on any node load the same, complete registry, and
a node that already holds it copies nothing. Every evaluator path must stay inside the
registry folder (no `..`, no absolute path, no symlink out). Only safetensors weights are
loaded (the engine passes use_safetensors=True; no pickle, no remote code). pyarrow's
filesystems (s3://, gs://, file://), as Ray Data and Ray Train use; no torch, no Ray.

Verification cache: hashing every file of a registry costs seconds per load (~5 GB for twelve
BERT-base evaluators), so a node verifies a registry once and remembers it in
`$VALUECSV_CACHE/verified/<registry_id>-<folder hash>.json` (written atomically with
storage.write_json; a corrupt one is ignored). A later load hashes only the files whose size,
mtime_ns, ctime_ns or inode changed since, or whose recorded sha256 in the manifest did, and
refuses any that no longer match. An edit that restores the mtime still changes the ctime, which
only the kernel sets; what the cache cannot see is a change that keeps all four (a write to the
raw disk, a filesystem that does not keep ctime, media rot) or a forged cache file. Force a full
check, hashing every file and refreshing the cache, with `VALUECSV_FULL_VERIFY=1` or
`load_registry(path, full_verify=True)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from valuecsv_ray.storage import cache_root, join, read_json, write_json

MANIFEST = "manifest.json"
COMPLETE = ".complete"  # marker in a cache folder whose files were all checked
FULL_VERIFY_ENV = "VALUECSV_FULL_VERIFY"  # "1": hash every file on every load (the cache is refreshed)
_CHUNK = 1 << 20
log = logging.getLogger(__name__)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def evaluator_folders(manifest: dict) -> list[str]:
    """The evaluator folders a manifest points at (relative paths), each once."""
    return sorted({ev["path"] for ev in manifest["evaluators"].values()})


def sha256_files(root: Path, relatives: Iterable[str]) -> dict[str, str]:
    """sha256 of each file (POSIX path relative to root), hashed in parallel threads: hashlib
    releases the GIL while it hashes, so a node's cores share a registry's gigabytes."""
    relatives = list(relatives)
    threads = min(len(relatives), os.cpu_count() or 1, 16)
    if threads <= 1:
        return {rel: sha256_file(root / rel) for rel in relatives}
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sha256") as pool:
        return dict(zip(relatives, pool.map(lambda rel: sha256_file(root / rel), relatives), strict=True))


def folder_files(root: Path, manifest: dict) -> list[str]:
    """Every file in the manifest's evaluator folders, by POSIX path relative to root."""
    return [file.relative_to(root).as_posix() for folder in evaluator_folders(manifest)
            for file in sorted((root / folder).rglob("*")) if file.is_file()]


def file_checksums(root: Path, manifest: dict) -> dict[str, str]:
    """sha256 of every file in the manifest's evaluator folders, by POSIX path relative to root."""
    return sha256_files(root, folder_files(root, manifest))


def unsafe_path(root: Path, relative: str) -> str | None:
    """Why `relative` may not be used inside `root` (None when it may)."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        return f"path {relative!r} leaves the registry folder"
    resolved = (root / pure).resolve()
    if not resolved.is_relative_to(root.resolve()):
        return f"path {relative!r} resolves to {resolved}, outside the registry folder (a symlink out?)"
    return None


def integrity_problems(root: Path, manifest: dict, remember: bool = False,
                       full_verify: bool = False) -> list[str]:
    """Unsafe paths, missing and extra files, and files whose sha256 is not the recorded one.
    With `remember`, files this node verified before and that are unchanged since are not hashed
    again (unless `full_verify` or $VALUECSV_FULL_VERIFY=1), and a clean result is remembered."""
    problems = [p for folder in evaluator_folders(manifest) if (p := unsafe_path(root, folder))]
    recorded = manifest.get("files") or {}
    remember = remember and bool(recorded)
    present = []
    for relative in recorded:
        if (why := unsafe_path(root, relative)) is not None:
            problems.append(why)
        elif not (root / relative).is_file():
            problems.append(f"{root / relative} is missing")
        else:
            present.append(relative)
    stats = {rel: _stat_key(root / rel) for rel in present}  # before hashing: a later write shows
    full_verify = full_verify or os.environ.get(FULL_VERIFY_ENV, "") not in ("", "0")
    known = {} if full_verify or not remember else _read_verified(root, manifest)
    unknown = [rel for rel in present if known.get(rel) != {"sha256": recorded[rel], "stat": stats[rel]}]
    for relative, actual in sha256_files(root, unknown).items():
        if actual != (expected := recorded[relative]):
            problems.append(
                f"{root / relative} is not the file the registry was built with "
                f"(sha256 {actual[:12]}..., recorded {expected[:12]}...): corrupted or swapped"
            )
    extra = set(folder_files(root, manifest)) - set(recorded) if recorded and not problems else set()
    problems += [
        f"{root / rel} is not part of the registry (not in the manifest's files)" for rel in sorted(extra)
    ]
    if remember:
        log.info("registry %s: %d of %d files hashed, %d verified before on this node and unchanged%s",
                 manifest.get("registry_id"), len(unknown), len(recorded), len(present) - len(unknown),
                 " (full verification)" if full_verify else "")
        if not problems:
            _write_verified(root, manifest, {rel: {"sha256": recorded[rel], "stat": stats[rel]}
                                             for rel in present})
    return problems


def _stat_key(path: Path) -> list[int]:
    """What changes when a file is written, replaced or swapped: size, mtime, ctime (set by the
    kernel on any write, rename or utime, so restoring the mtime does not hide an edit), inode."""
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def verification_file(root: Path, registry_id: str) -> Path:
    """Where this node remembers that the registry folder `root` was verified."""
    folder = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return cache_root().parent / "verified" / f"{registry_id}-{folder}.json"


def _read_verified(root: Path, manifest: dict) -> dict[str, dict]:
    """{relative path: {"sha256", "stat"}} remembered for this registry folder; {} when there is
    none, or it is unreadable or for another folder (then every file is hashed)."""
    path = verification_file(root, manifest["registry_id"])
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if record["registry_id"] != manifest["registry_id"] or record["root"] != str(root.resolve()):
            return {}
        return {rel: {"sha256": str(f["sha256"]), "stat": [int(x) for x in f["stat"]]}
                for rel, f in record["files"].items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        log.warning("ignoring the verification cache %s (%s): hashing every file", path, e)
        return {}


def _write_verified(root: Path, manifest: dict, files: dict[str, dict]) -> None:
    """Remember a clean verification, atomically; a cache that cannot be written costs only time."""
    path = verification_file(root, manifest["registry_id"])
    record = {"registry_id": manifest["registry_id"], "root": str(root.resolve()), "files": files}
    try:
        write_json(path, record)
    except OSError as e:
        log.warning("cannot write the verification cache %s (%s): the next load hashes again", path, e)


def _filesystem(uri: str):
    import pyarrow.fs as pafs

    return pafs.FileSystem.from_uri(uri)


def read_remote_manifest(uri: str) -> dict:
    try:
        return read_json(join(uri, MANIFEST))
    except (OSError, ValueError) as e:
        raise FileNotFoundError(f"{uri}/{MANIFEST} cannot be read ({e})") from e


def cache_registry(uri: str, manifest: dict | None = None) -> Path:
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
    write_json(tmp / MANIFEST, manifest)
    stats = {rel: _stat_key(tmp / rel) for rel in manifest["files"]}  # a rename of the folder keeps them
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
    _write_verified(target, manifest, {rel: {"sha256": sha, "stat": stats[rel]}  # so loading hashes nothing
                                       for rel, sha in manifest["files"].items()})
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
