"""Notebook 06's exercise checkers. Each expected value is computed here a second way, not by the function the
exercise is about: the SwiGLU and router weights written out for active parameters, the Switch formula on a
hand-made routing for the balance loss, the ratio of two measured times for the wall-clock question."""
from __future__ import annotations

from cot_lab.core import validate
from cot_lab.ui.checks import CheckResult, check_number, choice


def active_mlp_answer(answer, *, d_model: int, d_expert: int, n_experts: int, top_k: int) -> CheckResult:
    """Check the parameters one token passes through in one MoE MLP layer (top_k SwiGLU experts of width d_expert
    plus the router), exactly. Expected: top_k x 3 d_model d_expert (gate, up, down) + d_model n_experts."""
    d = validate.integer("d_model", d_model)
    expected = validate.integer("top_k", top_k) * 3 * d * validate.integer("d_expert", d_expert) \
        + d * validate.integer("n_experts", n_experts)
    return check_number(answer, float(expected), abs=0.5, name="my_active_mlp", unit="parameters",
                        hint="a SwiGLU expert has three d_model x d_expert matrices (gate, up, down); a token visits "
                             "top_k of them, and the router (d_model x n_experts) runs for every token.")


def collapsed_balance_answer(answer, *, n_experts: int) -> CheckResult:
    """Check the Switch balance loss N_E sum_i f_i P_i of a collapsed top-1 router (every token to expert 0, with
    probability 1), within 1e-6. Expected: f = (1, 0, ...), P = (1, 0, ...), so N_E x 1 x 1."""
    n = validate.integer("n_experts", n_experts, low=2, hint="experts in the layer, e.g. 8")
    f = [1.0] + [0.0] * (n - 1)
    p = [1.0] + [0.0] * (n - 1)
    return check_number(answer, n * sum(a * b for a, b in zip(f, p)), abs=1e-6, name="my_collapsed_balance",
                        hint="f_i: the share of tokens sent to expert i; P_i: its mean router probability. Only "
                             "expert 0 has either; multiply by N_E.")


def wall_clock_winner_answer(answer, *, dense_loss: float, moe_loss: float) -> CheckResult:
    """Check "dense" or "moe": which is lower at the same seconds on this machine (from the measured table)."""
    expected = "moe" if validate.number("moe_loss", moe_loss) < validate.number("dense_loss", dense_loss) else "dense"
    return choice(answer, expected, ("dense", "moe"), name="my_wall_clock_winner",
                  hint="at equal seconds the MoE gets C / r FLOPs; compare its loss there with dense's at C.")
