"""Audit benchmark: the Ray Data pipeline against the engine in a plain loop, and its memory.

    python bench/audit_bench.py --rows 100000                   # both paths on 100k rows
    python bench/audit_bench.py --rows 1000000 --only pipeline  # memory at 1M rows
    python bench/audit_bench.py --rows 200000 --null-scorer --loop-forward slim --loop-rows 4000
                                      # the pipeline's own ceiling against the slim engine's rate

Builds a synthetic corpus of N rows (JSONL) of 1 to --max-sentences sentences each, drawn from
ValueCSV5000 texts and quest100 answers (../shared/data), with six model names and quest100
questions as prompts,
then scores it (a) with `score_corpus` (read -> validate -> tokenise -> score actors -> Parquet)
and (b) with `Ensemble.score` in a plain loop over batches of the same rows, writing the same
Parquet columns. Prints rows/s of both, their ratio, and the peak memory of each path: the
benchmark process and its descendants (for the pipeline: Ray's raylet, workers, actors and
object store, started by this process), as summed PSS. Random tiny weights unless --registry.
--null-scorer gives the pipeline's actors an engine that tokenises for real and then answers
constant probabilities at once (NullEngine): the rate of everything around the models, the
most the audit can feed a scorer on these CPUs. Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MODELS = ("chatglm3-6b", "Baichuan4", "glm-4", "claude-3-opus", "gpt4", "llama2")


def sentence_pool(data_dir: Path) -> tuple[list[str], list[str]]:
    """Sentences of ValueCSV5000 texts and quest100 answers; quest100 questions."""
    from valuecsv_ray.train.annotated import load_annotated

    texts = list(load_annotated(data_dir / "ValueCSV5000.xlsx").texts)
    wide = pd.read_excel(data_dir / "quest100.xlsx", header=0)
    for column in wide.columns[1:]:
        texts += [t for t in wide[column] if isinstance(t, str) and t.strip()]
    questions = [q.strip() for q in wide[wide.columns[0]] if isinstance(q, str) and q.strip()]
    sentences = [s for t in texts for s in re.split(r"(?<=[。！？!?])", t) if len(s.strip()) >= 4]
    return sentences, questions


def make_corpus(path: Path, rows: int, data_dir: Path, max_sentences: int = 4, seed: int = 0,
                chunk: int = 50_000) -> None:
    """Write `rows` JSONL rows of 1 to max_sentences recombined sentences each, chunk by chunk."""
    sentences, questions = sentence_pool(data_dir)
    rng = np.random.default_rng(seed)
    with path.open("w", encoding="utf-8") as f:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            counts = rng.integers(1, max_sentences + 1, size=n)
            picks = rng.integers(0, len(sentences), size=int(counts.sum()))
            ends = np.cumsum(counts)
            for i in range(n):
                text = "".join(sentences[j] for j in picks[ends[i] - counts[i] : ends[i]])
                row = {"id": f"row{start + i}", "model": MODELS[(start + i) % 6],
                       "prompt": questions[(start + i) // 6 % len(questions)], "response": text}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


class MemoryPeak:
    """Peak memory of this process and all its descendants (Ray's raylet, workers, actors and
    object store when Ray was started here), sampled in a thread every `interval` seconds.

    Memory is the sum of proportional set sizes (PSS, /proc/PID/smaps_rollup): shared pages
    (libraries, the object store's shared memory) count once in all, not once per process.
    Other programs on the machine do not count. A sample of ~15 Ray processes costs the kernel
    ~0.15 s of CPU, hence the 5 s default: sampling every 0.5 s took a third of a core from the
    pipeline being measured.
    """

    def __init__(self, interval: float = 5.0):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def used() -> int:
        return sum(_pss(pid) for pid in _tree(os.getpid()))

    def __enter__(self) -> MemoryPeak:
        self.peak = self.used()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.used())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _tree(root: int) -> list[int]:
    """root and its descendants, from the parent ids in /proc/PID/stat."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def _pss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def plain_loop(corpus: Path, registry: str, out: Path, batch_size: int, threads: int, forward: str = "auto",
               rows: int | None = None) -> int:
    """The engine over batches of the corpus (its first `rows` rows) in one process, Parquet out;
    returns rows scored."""
    import torch

    from valuecsv_ray.scoring.engine import Ensemble

    torch.set_num_threads(threads)
    engine = Ensemble.from_registry(registry, device="cpu", forward=forward)
    out.mkdir(parents=True, exist_ok=True)
    scored, writer, batch = 0, None, []
    with corpus.open(encoding="utf-8") as f:
        for position, line in enumerate(itertools.islice(f, rows)):
            row = json.loads(line)
            batch.append({"row_id": row["id"], "source": str(corpus), "position": position,
                          "model": row["model"], "prompt": row["prompt"], "text": row["response"]})
            if len(batch) == batch_size:
                writer = _write(writer, out, engine, batch)
                scored, batch = scored + len(batch), []
    if batch:
        writer = _write(writer, out, engine, batch)
        scored += len(batch)
    writer.close()
    return scored


def _write(writer, out: Path, engine, batch: list[dict]):
    from valuecsv_ray.audit.pipeline import score_table
    from valuecsv_ray.audit.schema import score_schema

    rows = pa.Table.from_pylist(batch)
    table = score_table(rows, engine.score(rows["text"].to_pylist()))
    writer = writer or pq.ParquetWriter(out / "scores.parquet", score_schema(engine.taxonomy))
    writer.write_table(table)
    return writer


class NullEngine:
    """A stand-in for the engine in the audit's scoring actors: constant probabilities, at once.

    With it the benchmark times the pipeline's own ceiling (read, check, quarantine, tokenise,
    hand over, write) with no model compute.
    """

    def __init__(self, registry: str, **_engine_kwargs):
        from valuecsv_ray.scoring.engine import EnsembleTokenizer

        self.tokenizer = EnsembleTokenizer.from_registry(registry)  # the real tokenising
        self.registry_id, self.taxonomy = self.tokenizer.registry.registry_id, self.tokenizer.taxonomy
        self.groups = self.tokenizer.groups

    def score_encoded(self, encoded):
        from valuecsv_ray.scoring.engine import EnsembleScores

        n = len(encoded[0])
        probs = np.full((n, len(self.taxonomy.ids)), 0.5, dtype=np.float32)
        windows = np.array([len(w) for w in encoded[0]], dtype=np.int64)
        return EnsembleScores(self.registry_id, self.taxonomy, probs, probs >= 0.5, windows)


def null_engine() -> type[NullEngine]:
    """NullEngine, for `score_corpus(engine=...)`: sent to Ray's workers by value, as they may not
    import this file."""
    import sys

    from ray import cloudpickle

    if NullEngine.__module__ != "__main__":
        cloudpickle.register_pickle_by_value(sys.modules[NullEngine.__module__])
    return NullEngine


def pipeline(corpus: Path, registry: str, out: Path, args) -> dict:
    from valuecsv_ray.audit.pipeline import score_corpus
    from valuecsv_ray.config import load_audit_config
    from valuecsv_ray.registry.manifest import load_registry

    cfg = load_audit_config(overrides={"inputs": [str(corpus)], "registry": registry, "out": str(out),
                                       "batch_size": args.batch_size, "actors": args.actors,
                                       "cpus_per_actor": args.cpus_per_actor})
    engine = null_engine() if args.null_scorer else None
    return score_corpus(cfg, load_registry(registry), engine=engine)  # the scoring pass only, as the loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="corpus rows")
    parser.add_argument("--max-sentences", type=int, default=4,
                        help="sentences per row: 1 to this many (mean 48 chars each)")
    parser.add_argument("--only", choices=["both", "pipeline", "loop"], default="both")
    parser.add_argument("--null-scorer", action="store_true",
                        help="pipeline only, with a scorer that returns constant probabilities at once: "
                             "the pipeline's own ceiling")
    parser.add_argument("--registry", help="a trained registry (default: random tiny weights)")
    parser.add_argument("--batch-size", type=int, default=256, help="rows per scoring call")
    parser.add_argument("--actors", type=int, default=2, help="pipeline scoring actors")
    parser.add_argument("--cpus-per-actor", type=float, default=1.0, help="CPUs (threads) per actor")
    parser.add_argument("--ray-cpus", type=int, default=3, help="logical CPUs of the local Ray")
    parser.add_argument("--loop-threads", type=int, default=2, help="torch threads of the plain loop")
    parser.add_argument("--loop-forward", choices=["auto", "padded", "slim"], default="auto",
                        help="the plain loop's engine forward (auto: padded on CPU)")
    parser.add_argument("--loop-rows", type=int, help="the plain loop scores only the corpus' first rows")
    parser.add_argument("--work-dir", type=Path, help="where corpus and outputs go (default: a temp dir)")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="folder with the two xlsx files")
    args = parser.parse_args()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="audit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / f"corpus-{args.rows}-{args.max_sentences}.jsonl"
    if not corpus.is_file():
        start = time.perf_counter()
        make_corpus(corpus, args.rows, args.data_dir, args.max_sentences)
        print(f"corpus: {args.rows} rows, {corpus.stat().st_size / 1e6:.0f} MB in "
              f"{time.perf_counter() - start:.0f} s ({corpus})")
    registry = args.registry or _random_registry(work)
    results = {}
    if args.only in ("both", "loop"):
        results["loop"] = _timed(lambda: plain_loop(corpus, registry, _fresh(work / "loop"), args.batch_size,
                                                    args.loop_threads, args.loop_forward, args.loop_rows))
    if args.only in ("both", "pipeline"):
        import ray

        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        results["pipeline"] = _timed(lambda: pipeline(corpus, registry, _fresh(work / "pipeline"), args))
        ray.shutdown()
    _print(args, results)
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)


def _random_registry(work: Path) -> str:
    from valuecsv_ray.testing.synthetic import random_registry

    path = work / "random-tiny"
    if not (path / "manifest.json").is_file():
        random_registry(path, size="tiny")
    return str(path)


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    return path


def _timed(fn) -> dict:
    with MemoryPeak() as memory:
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
    if isinstance(result, int):
        return {"rows": result, "seconds": seconds, "peak_mb": memory.peak / 2**20}
    progress = result["progress"]  # the audit's own account: when the first scores came
    return {"rows": result["rows_scored"], "seconds": seconds, "peak_mb": memory.peak / 2**20,
            "first_scores_s": progress["first_scores_s"], "scoring_s": progress["scoring_s"]}


def _print(args, results: dict) -> None:
    scorer = "null scorer (constant probabilities)" if args.null_scorer else "the engine"
    print(f"{args.rows} rows, batch {args.batch_size}; pipeline: {args.actors} actor(s) x "
          f"{args.cpus_per_actor} CPU on a local Ray of {args.ray_cpus} CPUs, {scorer}; loop: "
          f"{args.loop_threads} torch threads, forward {args.loop_forward}")
    for name, r in results.items():
        rate = r["rows"] / r["seconds"]
        print(f"{name:9s} {r['rows']:9d} rows in {r['seconds']:8.1f} s = {rate:8.1f} rows/s; "
              f"peak memory {r['peak_mb']:6.0f} MiB")
        if "first_scores_s" in r:
            print(f"{'':9s} first scores written after {r['first_scores_s']:.1f} s (check pass, actor "
                  f"start-up); scoring pass {r['scoring_s']:.1f} s")
    if len(results) == 2:
        ratio = (results["pipeline"]["rows"] / results["pipeline"]["seconds"]) / (
            results["loop"]["rows"] / results["loop"]["seconds"])
        print(f"pipeline / plain loop: {ratio:.2f}x")


if __name__ == "__main__":
    main()
