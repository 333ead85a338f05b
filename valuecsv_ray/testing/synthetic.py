"""Random-weight registries, for tests and benchmarks (no training, no download).

    random_registry(Path("/tmp/reg"), size="base")   # one BERT-base-sized evaluator per value

A registry built here is complete and loads like a trained one (same files, written through
the registry's own functions), but its scores mean nothing: use it to test plumbing and to
time the engine, never to audit text. Its manifest says `"source": "synthetic"`.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification

from valuecsv_ray.backbone import quiet_hf_progress, tiny_config, tiny_model, tiny_tokenizer, tiny_vocab
from valuecsv_ray.registry import manifest as reg
from valuecsv_ray.taxonomy import Taxonomy, load_taxonomy

SIZES = ("tiny", "base")


def base_config() -> BertConfig:
    """BERT-base shape (12 layers, hidden 768) over the tiny character vocabulary (~21k,
    the size of bert-base-chinese's)."""
    return BertConfig(vocab_size=len(tiny_vocab()), hidden_size=768, num_hidden_layers=12,
                      num_attention_heads=12, intermediate_size=3072, max_position_embeddings=512,
                      num_labels=2)


def _model(size: str, seed: int) -> torch.nn.Module:
    if size == "tiny":  # the tiny backbone, heads and weights nudged apart per evaluator
        model = tiny_model()
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)
        return model
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return BertForSequenceClassification(base_config())


def random_registry(path: Path, size: str = "tiny", seed: int = 0, taxonomy: Taxonomy | None = None) -> Path:
    """Write a complete registry of random `size` BERTs to `path`, one evaluator per label of
    `taxonomy` (default: the built-in one)."""
    taxonomy = taxonomy or load_taxonomy()
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    config = tiny_config(2, False) if size == "tiny" else base_config()
    job = {"config": {"name": path.name, "backbone": f"random-{size}", "mode": "binary"},
           "data": {"sha256": "0" * 64, "source": "synthetic", "n_samples": 0},
           "split": {"seed": seed, "fractions": [0.7, 0.2, 0.1], "counts": {}},
           "versions": reg.versions(), "created": time.time(), "taxonomy": taxonomy.to_dict(),
           "model": {"layers": config.num_hidden_layers, "hidden": config.hidden_size}}
    reg.start_job(path, job)
    with quiet_hf_progress():
        for i, value_id in enumerate(taxonomy.ids):
            _add_random_evaluator(path, value_id, _model(size, seed * 100 + i), 0.3 + 0.03 * i, job)
    shutil.rmtree(path / "_build", ignore_errors=True)
    reg.write_manifest(path, taxonomy.ids)
    return path


def _add_random_evaluator(path: Path, value_id: str, model, threshold: float, job: dict) -> None:
    """One evaluator folder, written through the registry like a trained one."""
    metrics = {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "roc_auc": 0.5,
               "n_test": 10, "n_test_positive": 5}
    model.config.id2label = {0: f"not_{value_id}", 1: value_id}
    model.config.label2id = {f"not_{value_id}": 0, value_id: 1}
    folder = path / "_build" / value_id
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    result = {"evaluators": {value_id: {"threshold": threshold, "metrics": metrics}},
              "train_start": 0.0, "train_end": 1.0, "epochs_run": 1, "best_epoch": 0,
              "stopped_early": False, "attempts": [], "history": []}
    reg.add_evaluator(path, value_id, folder, result, job)
    shutil.rmtree(folder)
