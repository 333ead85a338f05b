"""Engine benchmark: the ValueCSV reference way of scoring against the ensemble engine.

    python bench/engine_bench.py                       # CPU, tiny random registry, 2,000 texts
    python bench/engine_bench.py --size base --n-texts 0 --device cuda   # H100: all texts

Both paths score the same texts (ValueCSV5000 texts and quest100 answers from ../shared/data)
with the same twelve evaluators:
  (a) reference: the ValueCSV code's way: for each of the 12 models in turn, tokenise with
      padding to max length (truncating), batches of 64, fp32;
  (b) engine: `Ensemble.score` (tokenise once, length-sorted token-budget batches, long texts
      windowed, bf16 + SDPA on CUDA).
Prints texts/s of both, their ratio, the largest probability difference on texts that fit in
one window, and on CUDA the engine's model-FLOPs utilisation against a measured bf16 matmul
ceiling. Random weights (`--size tiny|base`) unless `--registry DIR` names a trained one.
Run by hand, not in CI.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from valuecsv_ray.scoring.engine import Ensemble
from valuecsv_ray.testing.synthetic import random_registry
from valuecsv_ray.train.annotated import load_annotated

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_texts(data_dir: Path, n: int, seed: int) -> list[str]:
    """ValueCSV5000 texts plus every non-empty quest100 answer; a seeded sample of n (0: all)."""
    texts = list(load_annotated(data_dir / "ValueCSV5000.xlsx").texts)
    wide = pd.read_excel(data_dir / "quest100.xlsx", header=0)
    for column in wide.columns[1:]:
        texts += [t.strip() for t in wide[column] if isinstance(t, str) and t.strip()]
    if n and n < len(texts):
        pick = np.random.default_rng(seed).choice(len(texts), size=n, replace=False)
        texts = [texts[i] for i in sorted(pick)]
    return texts


def reference_models(engine: Ensemble) -> list[tuple[torch.nn.Module, object, int, int]]:
    """The registry's evaluators loaded again as the reference code loads them: fp32, default
    attention. (model, tokenizer, output column, output index) per value, loaded before timing."""
    models = []
    for column, value_id in enumerate(engine.value_ids):
        ev = engine.registry.manifest["evaluators"][value_id]
        folder = engine.registry.path / ev["path"]
        model = AutoModelForSequenceClassification.from_pretrained(folder).to(engine.device).eval()
        models.append((model, AutoTokenizer.from_pretrained(folder), column, ev["output_index"]))
    return models


@torch.inference_mode()
def reference_scores(models: list, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:
    """One model after another; every text padded to max length (truncated beyond it)."""
    out = np.zeros((len(texts), len(models)), dtype=np.float32)
    for model, tokenizer, column, index in models:
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start : start + batch_size], padding="max_length", truncation=True,
                            max_length=max_length, return_tensors="pt").to(model.device)
            logits = model(**enc).logits.float()
            probs = torch.sigmoid(logits) if model.config.problem_type == "multi_label_classification" \
                else torch.softmax(logits, dim=-1)
            out[start : start + batch_size, column] = probs[:, index].cpu().numpy()
    return out


def matmul_ceiling(device: torch.device, n: int = 8192, reps: int = 20) -> float:
    """Measured bf16 dense matmul throughput (FLOP/s) on this GPU."""
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def engine_flops(engine: Ensemble, texts: list[str]) -> float:
    """Model FLOPs of the engine's work: 2 x non-embedding params per token, plus attention
    (QK^T and AV: 4 x layers x hidden x window length per token), over every window, 12 models."""
    total = 0.0
    for group, per_text in zip(engine.groups, engine.tokenizer.encode(texts), strict=True):
        lengths = np.array([len(w) for windows in per_text for w in windows], dtype=np.float64)
        for head in group["heads"]:
            cfg = head.model.config
            params = sum(p.numel() for n, p in head.model.named_parameters() if "embeddings" not in n)
            total += 2 * params * lengths.sum()
            total += 4 * cfg.num_hidden_layers * cfg.hidden_size * (lengths**2).sum()
    return total


def timed(fn, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, help="a trained registry (default: random weights)")
    parser.add_argument("--size", choices=["tiny", "base"], default="tiny", help="random registry size")
    parser.add_argument("--n-texts", type=int, default=2000, help="texts to score (0: all ~5,500)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--token-budget", type=int, default=16384, help="engine tokens per batch")
    parser.add_argument("--data-dir", type=Path, default=DATA, help="folder with the two xlsx files")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args()
    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = load_texts(args.data_dir, args.n_texts, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.registry or random_registry(Path(tmp) / f"random-{args.size}", size=args.size)
        engine = Ensemble.from_registry(path, device=args.device, token_budget=args.token_budget)
        run(engine, texts)


def run(engine: Ensemble, texts: list[str]) -> None:
    device = engine.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()}"
    cfg = engine.groups[0]["heads"][0].model.config
    print(f"device {name}; {len(engine.value_ids)} evaluators of {cfg.num_hidden_layers} layers x "
          f"{cfg.hidden_size}; max length {engine.max_length}; {len(texts)} texts, "
          f"mean {np.mean([len(t) for t in texts]):.0f} chars")
    engine.score(texts[:8])  # warm-up (kernels, allocator)
    t_engine, scores = timed(lambda: engine.score(texts), device)
    models = reference_models(engine)
    t_ref, ref = timed(lambda: reference_scores(models, texts, engine.max_length), device)

    single = scores.windows == 1
    diff = np.abs(scores.probs[single] - ref[single]).max() if single.any() else float("nan")
    print(f"reference (fp32, pad to {engine.max_length}, batch 64, models in turn): "
          f"{len(texts) / t_ref:8.1f} texts/s ({t_ref:.1f} s)")
    print(f"engine ({str(engine.dtype).removeprefix('torch.')}, token budget {engine.token_budget}, "
          f"windows {scores.windows.sum()}): {len(texts) / t_engine:8.1f} texts/s ({t_engine:.1f} s)")
    print(f"speed-up engine / reference: {t_ref / t_engine:.2f}x")
    print(f"max |engine - reference| on {single.sum()} single-window texts: {diff:.2e}")
    if device.type == "cuda":
        ceiling = matmul_ceiling(device)
        achieved = engine_flops(engine, texts) / t_engine
        print(f"engine model FLOP/s {achieved / 1e12:.1f} T; bf16 matmul ceiling "
              f"{ceiling / 1e12:.1f} T; MFU {achieved / ceiling:.1%}")


if __name__ == "__main__":
    main()
