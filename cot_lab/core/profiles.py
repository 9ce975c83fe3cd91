"""Profiles: the budgets and model sizes a notebook uses, so one notebook runs on a CI box, a laptop and a GPU.

`COT_LAB_PROFILE` picks one: `smoke` (CI: a notebook in well under a minute on 2 CPU cores),
`laptop` (a run takes tens of seconds to a few minutes on a CPU), `gpu` (bigger models and
budgets). Unset, it is `gpu` when CUDA is present, else `laptop`. Only the numbers change;
the code path is the same in every profile.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from cot_lab.core import validate

ENV_VAR = "COT_LAB_PROFILE"


@dataclass(frozen=True)
class Profile:
    """Budgets (FLOPs) and sizes (parameters, sequences, tokens) for one kind of machine."""

    name: str
    params: float            # default model size of the training panel (parameters)
    params_min: float        # size slider range (parameters)
    params_max: float
    flops: float             # default training budget (FLOPs)
    flops_min: float         # budget slider range (FLOPs)
    flops_max: float
    batch_size: int = 16     # sequences per optimizer step
    seq_len: int = 128       # tokens of context per sequence
    eval_sequences: int = 128  # validation rows behind every evaluation
    corpus: str = "synthetic"
    # IsoFLOP sweep (notebook 02, `cot-lab sweep`): budgets in FLOPs, ladder sizes per budget, seeds per point,
    # its corpus, and where each budget's sizes are centred: sweep_centre = (N_opt at 1e12 FLOPs, exponent a)
    # from a pilot, else the N with sweep_tokens_per_param tokens per parameter. The held-out budget is
    # holdout_factor x the largest, trained with as many seeds.
    sweep_budgets: tuple = (3e10, 1e11, 3e11, 1e12)
    sweep_sizes: int = 7
    sweep_tokens_per_param: float = 20.0
    sweep_centre: tuple | None = None
    sweep_seeds: tuple = (0, 1)
    sweep_corpus: str = "synthetic-v3"
    holdout_factor: float = 4.0

    def __post_init__(self):
        for name in ("params_min", "params", "params_max", "flops_min", "flops", "flops_max"):
            validate.number(name, getattr(self, name))
        if not self.params_min <= self.params <= self.params_max:
            raise ValueError(f"params={self.params:g} must lie in [params_min={self.params_min:g}, "
                             f"params_max={self.params_max:g}]")
        if not self.flops_min <= self.flops <= self.flops_max:
            raise ValueError(f"flops={self.flops:g} must lie in [flops_min={self.flops_min:g}, "
                             f"flops_max={self.flops_max:g}]")
        if not self.sweep_budgets or not all(validate.is_number(b) and b > 0 for b in self.sweep_budgets):
            raise ValueError(f"sweep_budgets={self.sweep_budgets!r} must be a non-empty tuple of positive FLOP budgets")
        for name in ("batch_size", "seq_len", "eval_sequences", "sweep_sizes"):
            validate.integer(name, getattr(self, name))

    def replace(self, **changes) -> "Profile":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


# Sizes and budgets measured on a 2-core EPYC (bf16 autocast): a 30K-param model trains at about
# 2e9 FLOPs/s effective, so smoke runs take a few seconds; laptop defaults are ~1 minute there.
PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", params=3e4, params_min=1e4, params_max=3e5,
                     flops=4e9, flops_min=1e9, flops_max=1e11, batch_size=16, seq_len=64, eval_sequences=32,
                     sweep_budgets=(3e9, 1e10, 3e10), sweep_sizes=3, sweep_tokens_per_param=10.0, sweep_seeds=(0,)),
    # The laptop sweep: centred from the language pilot (`cot_lab.scaling.pilot.pilot_centre()`: H22 Approach 2 on the
    # shipped synthetic-v3 pilot gives N_opt = 69.5K at 1e12 FLOPs, exponent 0.653); budgets from 5e11, where the
    # optimum (~45K) has two ladder rungs below it (14.9K, 33K), to 2e12: three budgets, 7 sizes, 2 seeds and the
    # 8e12 held-out pair are ~1e14 FLOPs, about an hour on two CPU cores.
    "laptop": Profile("laptop", params=2e5, params_min=2e4, params_max=1e7,
                      flops=1e12, flops_min=1e10, flops_max=1e14, batch_size=16, seq_len=128, eval_sequences=128,
                      sweep_budgets=(5e11, 1e12, 2e12), sweep_sizes=7, sweep_centre=(69530.7, 0.6532)),
    "gpu": Profile("gpu", params=3e6, params_min=1e5, params_max=1e8,
                   flops=1e15, flops_min=1e12, flops_max=1e17, batch_size=32, seq_len=256, eval_sequences=256,
                   sweep_budgets=(1e14, 3e14, 1e15, 3e15, 1e16), sweep_sizes=7),
}


def auto_profile_name() -> str:
    """'gpu' when CUDA is available, else 'laptop'."""
    import torch  # imported here: choosing a profile is the first thing that needs it

    return "gpu" if torch.cuda.is_available() else "laptop"


def profile(name: str | None = None) -> Profile:
    """The Profile called `name`; None reads $COT_LAB_PROFILE (unset or 'auto': gpu with CUDA, else laptop)."""
    if name is None:
        raw = os.environ.get(ENV_VAR, "").strip().lower()
        if raw in ("", "auto"):
            return PROFILES[auto_profile_name()]
        if raw not in PROFILES:
            raise ValueError(f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not a profile; "
                             f"set it to one of {', '.join(PROFILES)} or 'auto' (or unset it)")
        return PROFILES[raw]
    if isinstance(name, Profile):
        return name
    if not isinstance(name, str) or name.strip().lower() not in (*PROFILES, "auto"):
        raise ValueError(f"name={name!r} is not a profile; use one of {', '.join(PROFILES)}, 'auto' or None")
    key = name.strip().lower()
    return PROFILES[auto_profile_name() if key == "auto" else key]
