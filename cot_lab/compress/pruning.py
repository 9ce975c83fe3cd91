"""Pruning: remove a fraction of a trained model's weights, by magnitude, by Wanda, or by whole heads / neurons.

Unstructured methods ("magnitude", "wanda") set weights to exact zeros inside the dense matrices:
the model keeps its shape, its size on disk and (on dense kernels) its speed. Structured methods
("heads", "mlp") cut whole attention heads or SwiGLU neurons out of the matrices, so the model
really gets smaller and faster (`cot_lab.compress.structured`).

What is counted (for every method): the 7 linear weights of each transformer block (see
`cot_lab.compress.targets`). Exactness: scope="row" zeros round(s * d_in) weights of every output
row, scope="layer" round(s * n) of every matrix, scope="global" round(s * N) of all of them
together, so every count is exact to the weight; the achieved fractions are in `pruning_report(model)`.

Which comparison group is best depends on the model: Wanda found per-output-row best for LLaMA
(and per-layer for image classifiers); in the tiny models of this course rows differ so much in
size that per-layer selection wins for both scores (notebook 03 measures it).
"""
from __future__ import annotations

import torch

from cot_lab.data.base import Corpus
from cot_lab.compress.record import add_record
from cot_lab.compress.structured import prune_heads, prune_mlp
from cot_lab.compress.targets import DEFAULT_CALIBRATION_SEQUENCES, block_linears, calibration_rows, check_fraction, check_model, input_sq_norms

METHODS = ("magnitude", "wanda", "heads", "mlp")
SCOPES = ("layer", "global", "row")


def prune(model, sparsity: float = 0.5, method: str = "magnitude", *, corpus: Corpus | None = None,
          scope: str | None = None, calibration_sequences: int = DEFAULT_CALIBRATION_SEQUENCES):
    """Prune `model` in place to `sparsity` (a fraction of the block weights, heads or neurons) and return it.

    method: "magnitude" (smallest |W|), "wanda" (smallest |W_ij| * ||X_j||_2; needs `corpus` for calibration
    rows), "heads" (whole attention heads) or "mlp" (whole SwiGLU neurons); the structured two rank by
    activations from `corpus` when it is given, by weight norms otherwise.
    scope, the comparison group of the unstructured methods: "row" (each output row), "layer" (each
    matrix) or "global" (all block matrices together; magnitude only). None takes each method's paper
    default: "layer" for magnitude, "row" for Wanda. Copy first (`copy.deepcopy`) to keep the original.
    Per-layer counts: `pruning_report(model)`.
    """
    check_model(model)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; use one of {METHODS}")
    sparsity = check_fraction("sparsity", sparsity)
    if scope is None:
        scope = {"magnitude": "layer", "wanda": "row"}.get(method, "layer")
    allowed = {"magnitude": SCOPES, "wanda": ("row", "layer")}.get(method, ("layer",))
    if scope not in allowed:
        raise ValueError(f"scope={scope!r} does not apply to method={method!r}; use one of {allowed} "
                         f"(or None for the method's default)")
    if method == "wanda" and corpus is None:
        raise ValueError("method='wanda' needs calibration data: pass corpus=cl.load_corpus(...) "
                         "(its train split gives the activations)")
    rows = None
    if corpus is not None:
        rows = calibration_rows(model, corpus, calibration_sequences)
    if method == "magnitude":
        per_layer = _magnitude(model, sparsity, scope)
    elif method == "wanda":
        per_layer = _wanda(model, sparsity, rows, scope)
    elif method == "heads":
        per_layer = prune_heads(model, sparsity, rows)
    else:
        per_layer = prune_mlp(model, sparsity, rows)
    total = sum(r["total"] for r in per_layer)
    pruned = sum(r["pruned"] for r in per_layer)
    add_record(model, {"step": "prune", "method": method, "scope": scope, "sparsity": sparsity,
                       "achieved": pruned / total, "calibrated": rows is not None, "per_layer": per_layer})
    return model


def _zero_smallest(weight: torch.Tensor, score: torch.Tensor, sparsity: float, scope: str) -> None:
    """Zero the entries of `weight` with the smallest `score` (same shape): round(sparsity * n) of each row
    (scope "row") or of the whole matrix ("layer"). topk picks exactly that many, ties or not."""
    if scope == "row":
        k = round(sparsity * weight.shape[1])
        if k:
            weight.scatter_(1, torch.topk(score, k, dim=1, largest=False).indices.to(weight.device), 0.0)
    else:
        k = round(sparsity * weight.numel())
        if k:
            weight.view(-1)[torch.topk(score.flatten(), k, largest=False).indices.to(weight.device)] = 0.0


def _rows(layer: int, name: str, weight: torch.Tensor) -> dict:
    zeros = int((weight == 0).sum())
    return {"layer": layer, "part": name, "total": weight.numel(), "pruned": zeros, "sparsity": zeros / weight.numel()}


@torch.no_grad()
def _magnitude(model, sparsity: float, scope: str) -> list[dict]:
    targets = block_linears(model)
    if scope != "global":
        for _, _, lin in targets:
            _zero_smallest(lin.weight, lin.weight.abs(), sparsity, scope)
    else:
        scores = torch.cat([lin.weight.abs().flatten().float() for _, _, lin in targets])
        k = round(sparsity * scores.numel())
        chosen = torch.zeros_like(scores, dtype=torch.bool)
        if k:
            chosen[torch.topk(scores, k, largest=False).indices] = True
        offset = 0
        for _, _, lin in targets:
            n = lin.weight.numel()
            lin.weight.view(-1)[chosen[offset:offset + n].to(lin.weight.device)] = 0.0
            offset += n
    return [_rows(i, name, lin.weight) for i, name, lin in targets]


@torch.no_grad()
def _wanda(model, sparsity: float, rows: torch.Tensor, scope: str) -> list[dict]:
    """Wanda (Sun et al. 2023; locuslab/wanda lib/prune.py): score |W_ij| * ||X_j||_2 within each comparison group.

    As in the reference, blocks are pruned in order and block i is calibrated on the activations of
    the model whose blocks < i are already pruned, so later blocks see the inputs they will get.
    """
    targets = block_linears(model)
    for i, layer in enumerate(model.model.layers):
        mine = [lin for j, _, lin in targets if j == i]
        sq = input_sq_norms(model, mine, rows, stop_after=layer)
        for lin in mine:
            score = lin.weight.abs().float().cpu() * sq[lin].sqrt()[None, :]  # [out, in]
            _zero_smallest(lin.weight, score, sparsity, scope)
    return [_rows(i, name, lin.weight) for i, name, lin in targets]


def sparsity_table(model):
    """Measured zeros of every block matrix: a DataFrame with layer, part, total, pruned (zeros), sparsity."""
    import pandas as pd

    return pd.DataFrame([_rows(i, name, lin.weight) for i, name, lin in block_linears(model)])
