"""Wasted compute: what a mis-set learning rate or batch cost, as a multiple of the budget a tuned run needs.

A run of N parameters that spent D tokens and ended at `loss`, where the best setting of the same sweep ended at
`best_loss`, would have reached `loss` with fewer tokens had it been tuned. Notebook 02's law says how many: with
L(N, D) = E + A / N^alpha + B / D^beta, and the law shifted to pass through the tuned run (its small misfit at
this one point taken out), the tuned model reaches `loss` at D' with

    B / D'^beta = B / D^beta + (loss - best_loss),   so   D / D' = (1 + (loss - best_loss) D^beta / B)^(1 / beta).

The same model, so FLOPs scale as tokens: the multiplier is the budget spent over the budget needed (1 at the
best setting, above 1 away from it; "this rate cost you 2.3x your budget").
"""
from __future__ import annotations

from cot_lab.core import validate
from cot_lab.core.law import ScalingLaw


def compute_multiplier(law: ScalingLaw, *, tokens: float, loss: float, best_loss: float) -> float:
    """Budget spent / budget a tuned run of the same model needs to reach `loss` (a tuned run reached
    `best_loss`, nats/token, on the same `tokens`). Below 1 if `loss` beats `best_loss`."""
    if not isinstance(law, ScalingLaw):
        raise ValueError(f"law must be a cl.ScalingLaw, e.g. notebook 02's fit (got {type(law).__name__})")
    tokens = validate.number("tokens", tokens, hint="training tokens of the run")
    loss = validate.number("loss", loss, hint="the run's final validation loss, nats/token")
    best_loss = validate.number("best_loss", best_loss, hint="the tuned run's loss, nats/token")
    base = 1.0 + (loss - best_loss) * tokens ** law.beta / law.B
    if base <= 0:
        raise ValueError(f"loss={loss:.4f} is below what {tokens:.3g} tokens can reach under this law from "
                         f"best_loss={best_loss:.4f}; check that both runs trained the same model on the same tokens")
    return float(base ** (1.0 / law.beta))
