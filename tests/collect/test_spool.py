"""PartWriter: a batch's answers reach disk within flush_s, in sequence, and a retried batch keeps them.

Usage: python -m pytest tests/collect/test_spool.py -q
"""

from __future__ import annotations

import asyncio
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from valuecsv_ray.collect.spool import PartWriter


def rows(*ids: str) -> pa.Table:
    return pa.table({"id": list(ids), "status": ["ok"] * len(ids)})


def on_disk(folder) -> list[str]:
    return sorted(pq.read_table(folder)["id"].to_pylist()) if list(folder.glob("*.parquet")) else []


def test_answers_are_written_within_flush_s_while_the_batch_runs(tmp_path):
    seen = {}

    async def main() -> None:
        writer = PartWriter(str(tmp_path), "batch-1", flush_s=0.2)
        async with writer.flushing():
            writer.add(rows("a"))
            t0 = time.monotonic()
            while not on_disk(tmp_path) and time.monotonic() - t0 < 5:
                await asyncio.sleep(0.02)
            seen["a"] = time.monotonic() - t0
            writer.add(rows("b", "c"))
            await asyncio.sleep(0.6)  # the batch goes on: b and c are flushed by then
            seen["mid"] = on_disk(tmp_path)
            writer.add(rows("d"))  # answered last: written when the block ends
        seen["end"] = on_disk(tmp_path)

    asyncio.run(main())
    assert seen["a"] < 1.0 and seen["mid"] == ["a", "b", "c"] and seen["end"] == ["a", "b", "c", "d"]
    names = sorted(p.name for p in tmp_path.glob("*.parquet"))
    assert len(names) == 3 and [n[-12:] for n in names] == ["0000.parquet", "0001.parquet", "0002.parquet"]
    assert len({n[:-12] for n in names}) == 1 and not list(tmp_path.glob("*.tmp"))


def test_rows_are_written_when_the_batch_fails(tmp_path):
    async def main() -> None:
        writer = PartWriter(str(tmp_path), "batch-1", flush_s=60)
        async with writer.flushing():
            writer.add(rows("a", "b"))
            raise RuntimeError("the batch broke after two answers")

    with pytest.raises(RuntimeError):
        asyncio.run(main())
    assert on_disk(tmp_path) == ["a", "b"]


def test_a_retried_batch_gets_what_its_first_try_wrote_and_continues_the_sequence(tmp_path):
    async def first_try() -> None:
        writer = PartWriter(str(tmp_path), "batch-1", flush_s=60)
        assert await writer.written() is None
        async with writer.flushing():
            writer.add(rows("a"))
            await writer.flush()
            writer.add(rows("b"))

    async def retry() -> list[str]:
        writer = PartWriter(str(tmp_path), "batch-1", flush_s=60)
        earlier = await writer.written()
        async with writer.flushing():
            writer.add(rows("c"))
        return sorted(earlier["id"].to_pylist())

    asyncio.run(first_try())
    (tmp_path / "part-other-0000.parquet").write_bytes(b"")  # another batch's file: not read
    assert asyncio.run(retry()) == ["a", "b"]
    assert sorted(
        p.name[-12:] for p in tmp_path.glob(PartWriter(str(tmp_path), "batch-1", 1).prefix + "*")
    ) == [
        "0000.parquet",
        "0001.parquet",
        "0002.parquet",
    ]
    assert asyncio.run(PartWriter(str(tmp_path), "batch-2", 1).written()) is None
