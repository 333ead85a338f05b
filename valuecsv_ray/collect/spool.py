"""One batch's answers written as they arrive: small part files, so a kill loses little.

    writer = PartWriter("out/responses", batch_key, flush_s=2.0, build=to_table)
    earlier = await writer.written()          # rows an earlier try of this batch already wrote
    async with writer.flushing():             # a flush every flush_s, and a last one at the end
        ... writer.add(answer) as each answer comes; a flush writes build(answers) ...

A batch's files are `part-<hash of the batch>-<sequence>.parquet`, each written whole (temporary
name and rename, or one upload), in sequence. An answer waits at most `flush_s` (and the write)
before it is in a file, so a process killed mid-batch loses at most the answers of its last
`flush_s` seconds and the requests on the wire. A task Ray retries after its actor died writes
under the same names: `written()` gives the rows the dead try wrote, so they are not asked again
and nothing is written twice. No Ray.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from valuecsv_ray.storage import exists, join, parquet_files, write_table


class PartWriter:
    """The part files of one batch of rows, flushed every `flush_s` seconds and at its end; a
    flush writes `build(items added since the last one)` (by default the items are tables)."""

    def __init__(
        self,
        folder: str,
        batch_key: str,
        flush_s: float,
        build: Callable[[list], pa.Table] = pa.concat_tables,
    ):
        self.folder, self.flush_s, self.build = folder, flush_s, build
        self.prefix = f"part-{hashlib.blake2b(batch_key.encode(), digest_size=12).hexdigest()}-"
        self._pending: list = []
        self._next = 0
        self._lock = asyncio.Lock()

    def name(self, seq: int) -> str:
        return f"{self.prefix}{seq:04d}.parquet"

    async def written(self) -> pa.Table | None:
        """The rows earlier tries of this batch wrote (None: this is its first try); later files
        continue their sequence."""
        if not await asyncio.to_thread(exists, join(self.folder, self.name(0))):
            return None
        files = await asyncio.to_thread(parquet_files, self.folder)
        ours = [(fs, path) for fs, path in files if path.rsplit("/", 1)[-1].startswith(self.prefix)]
        self._next = 1 + max(int(path[-len("0000.parquet") : -len(".parquet")]) for _, path in ours)
        tables = [await asyncio.to_thread(pq.read_table, path, filesystem=fs) for fs, path in ours]
        return pa.concat_tables(tables)

    def add(self, item) -> None:
        self._pending.append(item)

    async def flush(self) -> None:
        """Write the rows added since the last flush as the batch's next part file."""
        async with self._lock:
            if not self._pending:
                return
            table, self._pending = self.build(self._pending), []
            name, self._next = self.name(self._next), self._next + 1
            await asyncio.to_thread(write_table, table, join(self.folder, name))

    @contextlib.asynccontextmanager
    async def flushing(self):
        """Flush every flush_s while the block runs, and once more when it ends (also on an error)."""
        done = asyncio.Event()

        async def tick() -> None:
            while not done.is_set():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(done.wait(), self.flush_s)
                await self.flush()

        ticker = asyncio.create_task(tick())
        try:
            yield self
        finally:
            done.set()
            await ticker
            await self.flush()
