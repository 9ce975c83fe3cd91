"""The experiments of notebook 03 as functions: the model to prune, sparsity swept over methods, and the
compute question "train big, prune, recover" against "train the small model from scratch" at equal FLOPs."""
from __future__ import annotations

import copy

from cot_lab.data.base import Corpus
from cot_lab.core.evaluate import DEFAULT_EVAL_SEQUENCES, evaluate_loss
from cot_lab.core.runs import Run, RunStore
from cot_lab.core.config import config_of
from cot_lab.core.training import train
from cot_lab.compress.metrics import disk_bytes, n_params, sparse_bytes
from cot_lab.compress.pruning import prune
from cot_lab.compress.record import pruning_report
from cot_lab.compress.recovery import recover

# (label, method, scope) for the quality curves: both comparison groups matter on small models
CURVE_METHODS = (("magnitude (per matrix)", "magnitude", "layer"), ("magnitude (global)", "magnitude", "global"),
                 ("wanda (per row)", "wanda", "row"), ("wanda (per matrix)", "wanda", "layer"),
                 ("heads", "heads", None), ("mlp neurons", "mlp", None))

# The shipped model notebook 03 prunes in each profile (`cl.shipped_model(name)`), so every student starts
# from the same one. gpu takes the laptop model too: the notebook's trainings (recovery, the small model of
# section 6) cost 1.75x the model's own training budget.
SHIPPED_FOR_PROFILE = {"smoke": "smoke-29k", "laptop": "laptop-67k", "gpu": "laptop-67k"}

# Recovery budget, a share of the model's own training FLOPs. Published recoveries after pruning are a few
# percent of pretraining or less (Sheared-LLaMA, Xia et al. 2023: 50B tokens after LLaMA2-7B's 2T; Minitron,
# Muralidharan et al. 2024: ~94B tokens after Nemotron-15B's 8T). 10% is generous and still shows the point:
# on laptop-67k, 50% of heads + MLP recovered on 0.25x (58% of the original tokens, the pruned model being
# cheaper per token) caught up with the dense model (3.3173 vs 3.3174), on 0.1x it stays above (3.348).
RECOVER_SHARE = 0.1


def pruned_copy(model, corpus: Corpus, label: str, sparsity: float, *, methods=CURVE_METHODS):
    """A copy of `model` pruned to `sparsity` by the entry of `methods` called `label` (calibrated on `corpus`).

    Every table of notebook 03 prunes through here, so a label names one model and one loss everywhere."""
    by_label = {name: (method, scope) for name, method, scope in methods}
    if label not in by_label:
        raise ValueError(f"label={label!r} is not one of the methods; use one of {list(by_label)}")
    method, scope = by_label[label]
    return prune(copy.deepcopy(model), sparsity, method, corpus=corpus, scope=scope)


def quality_curves(model, corpus: Corpus, sparsities=(0.25, 0.5, 0.75), *, methods=CURVE_METHODS,
                   n_sequences: int = DEFAULT_EVAL_SEQUENCES):
    """Validation loss (nats/token) and size of `model` pruned by every method at every sparsity: a DataFrame with
    method, requested and achieved sparsity, val_loss, params, disk_bytes, bitmask_bytes. A sparsity a
    structured method cannot reach (it would remove every head of a layer) is left out; 0 is the dense model."""
    import pandas as pd

    dense_loss = evaluate_loss(model, corpus, n_sequences=n_sequences)
    rows = []
    for label, *_ in methods:
        rows.append(dict(method=label, requested=0.0, achieved=0.0, val_loss=dense_loss, params=n_params(model),
                         disk_bytes=disk_bytes(model), bitmask_bytes=sparse_bytes(model)["bitmask"]))
        for s in sparsities:
            try:
                pruned = pruned_copy(model, corpus, label, s, methods=methods)
            except ValueError:  # e.g. 0.75 of 2 heads would leave none
                continue
            rows.append(dict(method=label, requested=s, achieved=pruning_report(pruned).attrs["achieved"],
                             val_loss=evaluate_loss(pruned, corpus, n_sequences=n_sequences),
                             params=n_params(pruned), disk_bytes=disk_bytes(pruned),
                             bitmask_bytes=sparse_bytes(pruned)["bitmask"]))
    return pd.DataFrame(rows)


def prune_or_train_small(run: Run, corpus: Corpus, *, sparsity: float = 0.5, recover_share: float = RECOVER_SHARE,
                         batch_size: int = 16, eval_sequences: int = DEFAULT_EVAL_SEQUENCES, seed: int = 0,
                         store: RunStore | None = None) -> dict:
    """At equal total FLOPs: `run`'s model with `sparsity` of its heads and MLP neurons removed, then recovered on
    recover_share x its training FLOPs, against a model of exactly the pruned shape trained from scratch on
    (1 + recover_share) x those FLOPs. Returns losses (nats/token), sizes (parameters) and the FLOPs.

    Both arms run through the same trainer (`cl.train`; recovery is `cl.train` from the pruned weights), with
    the same batch size, recipe and FLOP count (Chinchilla App. F of each model's own shape), so the
    comparison is of the two ways to spend the compute, not of two recipes. The small model has the pruned
    model's shape (fewer heads of the same width, a narrower MLP), freshly initialised with `seed`.
    """
    big = copy.deepcopy(run.load_model())
    prune(big, sparsity, "heads", corpus=corpus)
    prune(big, sparsity, "mlp", corpus=corpus)
    pruned_loss = evaluate_loss(big, corpus, n_sequences=eval_sequences)
    recover_flops = recover_share * run.flops
    total = run.flops + recover_flops
    recover(big, corpus, flops=recover_flops, batch_size=batch_size, eval_sequences=eval_sequences, store=store)
    small_run = train(config_of(big), corpus, flops=total, seed=seed, batch_size=batch_size,
                      eval_sequences=eval_sequences, store=store, progress=False)
    small = small_run.load_model()
    return dict(total_flops=total, big_params=run.n_params, big_loss=run.final_val_loss, pruned_loss=pruned_loss,
                pruned_params=n_params(big), recovered_loss=evaluate_loss(big, corpus, n_sequences=eval_sequences),
                small_params=n_params(small), small_loss=evaluate_loss(small, corpus, n_sequences=eval_sequences),
                recovered_model=big, small_model=small, small_run=small_run)
