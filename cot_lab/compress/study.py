"""The experiments of notebook 03 as functions: pick a trained model, sweep sparsity over methods, and the
compute question "train big, prune, recover" against "train the small model from scratch" at equal FLOPs."""
from __future__ import annotations

import copy

import torch

from ..config import preset
from ..data.base import Corpus
from ..evaluate import DEFAULT_EVAL_SEQUENCES, evaluate_loss
from ..profiles import Profile
from ..runs import Run, RunStore
from ..train import default_lr, train
from .metrics import disk_bytes, n_params, sparse_bytes
from .pruning import prune
from .record import pruning_report
from .recovery import recover

# (label, method, scope) for the quality curves: both comparison groups matter on small models
CURVE_METHODS = (("magnitude (per matrix)", "magnitude", "layer"), ("magnitude (global)", "magnitude", "global"),
                 ("wanda (per row)", "wanda", "row"), ("wanda (per matrix)", "wanda", "layer"),
                 ("heads", "heads", None), ("mlp neurons", "mlp", None))


def trained_run(store: RunStore, corpus: Corpus, profile: Profile, *, seed: int = 0) -> Run:
    """The largest finished dense run on `corpus` in `store` with a checkpoint and at most profile.params_max
    parameters (e.g. from the scaling sweep of notebook 02); if there is none, a run trained now:
    `preset(profile.params)` on profile.flops FLOPs."""
    candidates = [r for r in store.runs("ok") if r.corpus_fingerprint == corpus.fingerprint
                  and r.config.arch == "dense" and r.n_params <= profile.params_max
                  and store.checkpoint_path(r.run_id).exists()]
    if candidates:
        return max(candidates, key=lambda r: (r.n_params, r.flops))
    cfg = preset(profile.params, vocab_size=corpus.vocab_size, seq_len=profile.seq_len)
    return train(cfg, corpus, flops=profile.flops, seed=seed, batch_size=profile.batch_size,
                 eval_sequences=profile.eval_sequences, store=store, progress=False)


def quality_curves(model, corpus: Corpus, sparsities=(0.25, 0.5, 0.75), *, methods=CURVE_METHODS,
                   n_sequences: int = DEFAULT_EVAL_SEQUENCES):
    """Validation loss (nats/token) and size of `model` pruned by every method at every sparsity: a DataFrame with
    method, requested and achieved sparsity, val_loss, params, disk_bytes, bitmask_bytes. A sparsity a
    structured method cannot reach (it would remove every head of a layer) is left out; 0 is the dense model."""
    import pandas as pd

    dense_loss = evaluate_loss(model, corpus, n_sequences=n_sequences)
    rows = []
    for label, method, scope in methods:
        rows.append(dict(method=label, requested=0.0, achieved=0.0, val_loss=dense_loss, params=n_params(model),
                         disk_bytes=disk_bytes(model), bitmask_bytes=sparse_bytes(model)["bitmask"]))
        for s in sparsities:
            try:
                pruned = prune(copy.deepcopy(model), s, method, corpus=corpus, scope=scope)
            except ValueError:  # e.g. 0.75 of 2 heads would leave none
                continue
            rows.append(dict(method=label, requested=s, achieved=pruning_report(pruned).attrs["achieved"],
                             val_loss=evaluate_loss(pruned, corpus, n_sequences=n_sequences),
                             params=n_params(pruned), disk_bytes=disk_bytes(pruned),
                             bitmask_bytes=sparse_bytes(pruned)["bitmask"]))
    return pd.DataFrame(rows)


def prune_or_train_small(run: Run, corpus: Corpus, *, sparsity: float = 0.5, recover_share: float = 0.25,
                         batch_size: int = 16, eval_sequences: int = DEFAULT_EVAL_SEQUENCES, seed: int = 0) -> dict:
    """At equal total FLOPs: `run`'s model with `sparsity` of its heads and MLP neurons removed, then recovered on
    recover_share x its training FLOPs, against a model of exactly the pruned shape trained from scratch on
    (1 + recover_share) x those FLOPs. Returns losses (nats/token), sizes (parameters) and the FLOPs.

    The small model has the pruned model's own config (fewer heads of the same width, a narrower MLP: a shape
    `cl.ModelConfig` cannot express), freshly initialised; `recover` on it is a from-scratch training with the
    trainer's recipe at `cl.default_lr` (there are no zeros to keep).
    """
    big = copy.deepcopy(run.load_model())
    prune(big, sparsity, "heads", corpus=corpus)
    prune(big, sparsity, "mlp", corpus=corpus)
    pruned_loss = evaluate_loss(big, corpus, n_sequences=eval_sequences)
    recover_flops = recover_share * run.flops
    total = run.flops + recover_flops
    with torch.random.fork_rng(devices=[]):  # a seeded init that leaves the caller's RNG alone
        torch.manual_seed(seed)
        small = type(big)(copy.deepcopy(big.config))
    small.config.cot_lab_compression = []
    recover(big, corpus, flops=recover_flops, batch_size=batch_size, eval_sequences=eval_sequences)
    recover(small, corpus, flops=total, lr=default_lr(run.config), batch_size=batch_size,
            eval_sequences=eval_sequences, seed=seed)
    return dict(total_flops=total, big_params=run.n_params, big_loss=run.final_val_loss, pruned_loss=pruned_loss,
                pruned_params=n_params(big), recovered_loss=evaluate_loss(big, corpus, n_sequences=eval_sequences),
                small_params=n_params(small), small_loss=evaluate_loss(small, corpus, n_sequences=eval_sequences),
                recovered_model=big, small_model=small)
