"""The object-storage round trip, as a user runs it, against a local S3 (moto) or a real bucket.

    python scripts/s3_round_trip.py                      # starts a local moto S3 on a free port
    AWS_ENDPOINT_URL=... python scripts/s3_round_trip.py --bucket my-bucket --no-moto

train (runs_dir on S3) -> `serve run` of the shipped YAML with the S3 registry -> one scoring
request -> audit of quest100 with --out on S3, killed midway and run again -> the outputs read
back with pandas and DuckDB. Each step is the CLI a user types, in a subprocess; it prints the
row counts at the end. Needs ../shared/data/quest100.xlsx (or --quest100). Run by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], env: dict, **kw) -> subprocess.CompletedProcess:
    print("$", " ".join(args), flush=True)
    done = subprocess.run(args, env=env, capture_output=True, text=True, **kw)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def wait_http(url: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"{url} did not answer within {timeout:.0f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bucket", default="valuecsv-ray")
    ap.add_argument("--no-moto", action="store_true", help="use AWS_ENDPOINT_URL / real S3 as configured")
    ap.add_argument("--quest100", type=Path, default=ROOT.parent / "shared" / "data" / "quest100.xlsx")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s3-round-trip-"))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "TOKENIZERS_PARALLELISM": "false",
        "VALUECSV_CACHE": str(work / "cache"),
    }
    if not args.no_moto:
        from moto.server import ThreadedMotoServer

        port = free_port()
        ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False).start()
        env |= {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        }
    os.environ.update(env)
    import pyarrow.fs as pafs

    s3 = pafs.S3FileSystem(endpoint_override=env.get("AWS_ENDPOINT_URL"), allow_bucket_creation=True)
    s3.create_dir(args.bucket)
    root = f"s3://{args.bucket}"
    cli = str(BIN / "valuecsv-ray")

    started = time.time()
    run(
        [
            cli,
            "train",
            "--config",
            str(ROOT / "configs/train/quickstart.yaml"),
            "--runs-dir",
            f"{root}/runs",
            "--name",
            "round-trip",
        ],
        env,
    )
    registry = f"{root}/runs/round-trip"
    trained = time.time()

    config = yaml.safe_load((ROOT / "serve_configs/ensemble.yaml").read_text())
    config["applications"][0]["args"] |= {"registry": registry, "token": "round-trip-token"}
    config["http_options"] = {**config.get("http_options", {}), "port": free_port()}
    (work / "serve.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    with (work / "serve.log").open("w") as log:
        serve = subprocess.Popen(
            [str(BIN / "serve"), "run", "serve.yaml"],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{config['http_options']['port']}"
    try:
        wait_http(f"{url}/healthz")
        scored = run([cli, "score", "--url", url, "--token", "round-trip-token", "人人平等，依法办事。"], env)
        print(scored.stdout)
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(timeout=60)
    served = time.time()

    out = f"{root}/audit/quest100"
    audit = [
        cli,
        "audit",
        str(args.quest100),
        "--wide",
        "--registry",
        registry,
        "--out",
        out,
        "--batch-size",
        "16",
    ]
    first = subprocess.Popen(
        audit, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    parts = f"{args.bucket}/audit/quest100/scores"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and first.poll() is None:
        infos = s3.get_file_info(pafs.FileSelector(parts, allow_not_found=True))
        if any(i.path.endswith(".parquet") for i in infos):
            break
        time.sleep(0.5)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    time.sleep(2)
    before = [i.path for i in s3.get_file_info(pafs.FileSelector(parts, allow_not_found=True))]
    print(f"audit killed midway: {len(before)} scores file(s) on S3", flush=True)
    print(run(audit, env).stdout[-1500:])
    audited = time.time()

    import duckdb
    import pandas as pd
    import pyarrow.dataset as ds

    scores = pd.read_parquet(f"{args.bucket}/audit/quest100/scores", filesystem=s3)
    quarantine = pd.read_parquet(f"{args.bucket}/audit/quest100/quarantine", filesystem=s3)
    with s3.open_input_stream(f"{args.bucket}/audit/quest100/summary.json") as f:
        summary = json.loads(f.read())
    dataset = ds.dataset(parts, filesystem=s3, format="parquet")  # noqa: F841
    per_model = duckdb.sql("select model, count(*) from dataset group by model order by model").fetchall()
    print(
        json.dumps(
            {
                "train_s": round(trained - started, 1),
                "serve_s": round(served - trained, 1),
                "audit_s": round(audited - served, 1),
                "summary": {
                    k: summary[k] for k in ("rows_in", "rows_scored", "rows_quarantined", "duplicates")
                },
                "pandas_scores_rows": len(scores),
                "pandas_quarantine_rows": len(quarantine),
                "row_ids_unique": bool(scores["row_id"].is_unique),
                "duckdb_rows_per_model": dict(per_model),
            },
            indent=2,
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
