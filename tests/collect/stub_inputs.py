"""Inputs of collect runs against the stub LLM (imported by the tests beside it): a suite file, an
endpoints file of two LLMs (alpha: one sample; beta: two, seeded), and the responses written."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import yaml

from valuecsv_ray.collect.pipeline import RESPONSES


def write_suite(path: Path, prompts: list[str]) -> Path:
    path.write_text(
        "".join(json.dumps({"id": i, "prompt": p}, ensure_ascii=False) + "\n" for i, p in enumerate(prompts)),
        encoding="utf-8",
    )
    return path


def write_endpoints(path: Path, base_url: str, **common) -> Path:
    endpoints = [
        {
            "name": "alpha",
            "base_url": base_url,
            "model": "stub-a",
            "api_key_env": "STUB_KEY",
            "max_in_flight": 3,
            "timeout_s": 0.5,
            "max_attempts": 3,
            **common,
        },
        {
            "name": "beta",
            "base_url": base_url,
            "model": "stub-b",
            "api_key_env": "STUB_KEY",
            "max_in_flight": 2,
            "samples": 2,
            "temperature": 0.7,
            "seed": 7,
            "timeout_s": 0.5,
            "max_attempts": 3,
            **common,
        },
    ]
    path.write_text(yaml.safe_dump({"endpoints": endpoints}), encoding="utf-8")
    return path


def read_responses(out: Path) -> pd.DataFrame:
    return pq.read_table(out / RESPONSES).to_pandas()
