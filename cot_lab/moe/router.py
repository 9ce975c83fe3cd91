"""The router's health, per MoE layer: where tokens go, how balanced that is, and what a capacity limit would drop.

For a batch of T tokens, layer l, experts i = 1..N_E, top_k experts per token:
  counts_i      token-expert assignments routed to expert i (they sum to T * top_k)
  f_i           counts_i / (T * top_k), the share of assignments (Switch Transformer's "fraction of tokens
                dispatched to expert i", Fedus et al. 2021, arXiv 2101.03961, Eq. 5, which is top-1)
  P_i           mean over tokens of the router probability softmax(logits)_i (Eq. 6)
  balance loss  N_E * sum_i f_i * P_i (Eq. 4 without its coefficient alpha): 1 when routing is uniform
  z-loss        mean over tokens of logsumexp(logits)^2 (ST-MoE, Zoph et al. 2022, arXiv 2202.08906, Eq. 5)
  load entropy  -sum_i f_i ln f_i (nats): ln N_E when balanced, 0 when one expert takes all
  router entropy  mean over tokens of -sum_i p_i ln p_i (nats): how undecided the router is per token
  dead experts  experts with no assignment in the batch
  overflow      share of the T * top_k assignments beyond an expert's capacity, floor(factor * T * top_k / N_E)
                (Fedus et al. 2021, Sec. 2.2, Eq. 3, times top_k: each token makes top_k assignments); a
                capacity-limited implementation would drop them (transformers' Mixtral drops none)

transformers' `aux_loss` (output_router_logits=True) is the same Switch formula with two differences: f_i is
normalised by T, not T * top_k (so it is top_k at balance), and counts and probabilities are pooled over all
layers before the product, not one loss per layer. `RouterStats.transformers_aux_loss()` recomputes that pooled
number from the per-layer statistics, so the two can be compared like with like.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from cot_lab.core import validate
from cot_lab.core.config import config_of

DEFAULT_CAPACITY_FACTOR = 1.25  # Switch Transformer's training capacity factor (Fedus et al. 2021, Table 1)
DEFAULT_SEQUENCES = 16


def check_capacity_factor(capacity_factor) -> float:
    """`capacity_factor` as a float > 0; ValueError naming it otherwise."""
    return validate.number("capacity_factor", capacity_factor,
                           hint="a capacity factor > 0, e.g. 1.0 or 1.25 (capacity = factor * tokens * top_k / n_experts)")


@dataclass
class RouterStats:
    """Routing statistics of one batch, one row per MoE layer (arrays [n_layer] or [n_layer, n_experts]).

    tokens: T, the tokens routed per layer; counts: assignments per expert; mean_prob: P_i; balance_loss,
    z_loss: dimensionless; load_entropy, router_entropy: nats; overflow: a share of the T * top_k assignments;
    capacity: assignments one expert could hold at capacity_factor; hf_aux_loss: transformers' `aux_loss` for
    the same forward (None when the statistics were computed from logits alone).
    """

    tokens: int
    n_experts: int
    top_k: int
    capacity_factor: float
    counts: np.ndarray
    mean_prob: np.ndarray
    balance_loss: np.ndarray
    z_loss: np.ndarray
    load_entropy: np.ndarray
    router_entropy: np.ndarray
    dead_experts: tuple
    overflow: np.ndarray
    hf_aux_loss: float | None = None

    @property
    def capacity(self) -> float:
        """Assignments one expert may hold: capacity_factor * T * top_k / n_experts (its floor is what fits)."""
        return self.capacity_factor * self.tokens * self.top_k / self.n_experts

    @property
    def load(self) -> np.ndarray:
        """f_i: each expert's share of the assignments, [n_layer, n_experts]; a row sums to 1."""
        return self.counts / (self.tokens * self.top_k)

    def to_record(self) -> dict:
        """A JSON-ready dict (lists for arrays) that `RouterStats.from_record` turns back into these statistics."""
        out = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(self).items()}
        out["dead_experts"] = [list(d) for d in self.dead_experts]
        return out

    @classmethod
    def from_record(cls, record: dict) -> "RouterStats":
        fields = {k: record[k] for k in cls.__dataclass_fields__ if k in record}
        arrays = {k: np.asarray(fields[k]) for k in ("counts", "mean_prob", "balance_loss", "z_loss", "load_entropy",
                                                      "router_entropy", "overflow")}
        return cls(**{**fields, **arrays, "dead_experts": tuple(tuple(d) for d in fields["dead_experts"])})

    def transformers_aux_loss(self) -> float:
        """transformers' Mixtral `aux_loss` from these statistics: N_E * sum_i F_i * Pbar_i with F_i = top_k * mean_l f_li
        (assignments per token) and Pbar_i = mean_l P_li, i.e. pooled over layers before the product."""
        pooled_f = self.top_k * self.load.mean(axis=0)
        return float(self.n_experts * np.sum(pooled_f * self.mean_prob.mean(axis=0)))

    def frame(self):
        """One row per layer: layer, routed_tokens (T), balance_loss, z_loss, load_entropy, router_entropy, n_dead,
        overflow, max_load (the busiest expert's share f_i), as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(dict(layer=np.arange(len(self.counts)), routed_tokens=self.tokens,
                                 balance_loss=self.balance_loss, z_loss=self.z_loss, load_entropy=self.load_entropy,
                                 router_entropy=self.router_entropy,
                                 n_dead=[len(d) for d in self.dead_experts], overflow=self.overflow,
                                 max_load=self.load.max(axis=1)))


def routing_stats(logits, top_k: int, *, capacity_factor: float = DEFAULT_CAPACITY_FACTOR,
                  hf_aux_loss: float | None = None) -> RouterStats:
    """RouterStats from router logits, one [T, n_experts] tensor per layer, routed as Mixtral routes:
    the top_k experts of softmax(logits) in fp32."""
    capacity_factor = check_capacity_factor(capacity_factor)
    layers = [torch.as_tensor(x).detach().float().reshape(-1, torch.as_tensor(x).shape[-1]) for x in logits]
    if not layers:
        raise ValueError("logits: give one [tokens, n_experts] tensor per MoE layer (got none)")
    tokens, n_experts = layers[0].shape
    top_k = validate.integer("top_k", top_k, high=n_experts, hint=f"experts per token, at most n_experts={n_experts}")
    names = ("counts", "mean_prob", "balance_loss", "z_loss", "load_entropy", "router_entropy", "overflow")
    out = {k: [] for k in names}
    dead = []
    cap = math.floor(capacity_factor * tokens * top_k / n_experts)  # whole assignments fit
    for x in layers:
        probs = torch.softmax(x, dim=-1)
        chosen = torch.topk(probs, top_k, dim=-1).indices  # the router's own choice (MixtralTopKRouter)
        counts = torch.bincount(chosen.flatten(), minlength=n_experts).double()
        f = counts / (tokens * top_k)
        p = probs.double().mean(dim=0)
        out["counts"].append(counts.long().numpy())
        out["mean_prob"].append(p.numpy())
        out["balance_loss"].append(float(n_experts * torch.sum(f * p)))
        out["z_loss"].append(float(torch.logsumexp(x.double(), dim=-1).pow(2).mean()))
        out["load_entropy"].append(float(-torch.sum(torch.special.xlogy(f, f))))
        out["router_entropy"].append(float(-torch.special.xlogy(probs.double(), probs.double()).sum(-1).mean()))
        out["overflow"].append(float((counts - cap).clamp(min=0).sum() / (tokens * top_k)))
        dead.append(tuple(int(i) for i in torch.nonzero(counts == 0).flatten()))
    arrays = {k: np.asarray(v) for k, v in out.items()}
    return RouterStats(tokens=int(tokens), n_experts=int(n_experts), top_k=top_k, capacity_factor=capacity_factor,
                       dead_experts=tuple(dead), hf_aux_loss=hf_aux_loss, **arrays)


def _check_moe(model) -> None:
    if config_of(model).arch != "moe":
        raise ValueError(f"model={type(model).__name__} has no router; router_stats needs an MoE model "
                         "(cl.build_model(cl.ModelConfig(arch='moe', ...)))")


def router_stats_of_rows(model, rows: torch.Tensor, *,
                         capacity_factor: float = DEFAULT_CAPACITY_FACTOR) -> RouterStats:
    """RouterStats of `model` on token rows [n, T+1] (their first T tokens are fed, as in training), one forward
    without gradients in eval mode, transformers' `aux_loss` for the same forward kept alongside."""
    _check_moe(model)
    check_capacity_factor(capacity_factor)
    rows = torch.as_tensor(rows)
    if rows.ndim != 2 or rows.shape[1] < 2:
        raise ValueError(f"rows of shape {tuple(rows.shape)}: give token ids [n_sequences, seq_len + 1]")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            out = model(input_ids=rows[:, :-1].to(device), output_router_logits=True)
    finally:
        model.train(was_training)
    return routing_stats([x.cpu() for x in out.router_logits], model.config.num_experts_per_tok,
                         capacity_factor=capacity_factor, hf_aux_loss=float(out.aux_loss))


def router_stats(model, corpus, *, sequences: int = DEFAULT_SEQUENCES, seq_len: int | None = None,
                 capacity_factor: float = DEFAULT_CAPACITY_FACTOR) -> RouterStats:
    """Per-layer expert load, balance loss, z-loss, routing entropies, dead experts and overflow of an MoE `model`
    on `sequences` rows of `corpus`'s fixed validation set (seq_len tokens each; None: the model's context)."""
    _check_moe(model)
    sequences = validate.integer("sequences", sequences, hint="validation rows to route, e.g. 16")
    seq = validate.integer("seq_len", config_of(model).seq_len if seq_len is None else seq_len, hint="tokens per row")
    check_capacity_factor(capacity_factor)
    return router_stats_of_rows(model, corpus.val_batch(sequences, seq), capacity_factor=capacity_factor)
