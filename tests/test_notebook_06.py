"""Notebook 06 with its exercises answered and its button pressed (a smoke budget): the checkers agree and the
prose's numbers are printed beside it."""
import re

from test_notebooks import NOTEBOOK_DIR, answered_text, smoke_env  # noqa: F401

PATH = NOTEBOOK_DIR / "06_dense_vs_moe.ipynb"

# The panel's button trains at the shipped study's budget (about a minute); pressed here at a few seconds' worth.
PRESS = """
smoke_router = RouterPanel(pilot["router"], corpus, store, flops=2e9, every=5)
smoke_run, smoke_history = smoke_router.train()
print('__router__', smoke_run.status, smoke_run.config.arch, len(smoke_history))
"""

# Each answer worked out as a student would, from the exercise's own numbers.
ANSWERS = {
    # top-2 experts of three 24 x d_expert matrices, and the 24 x 8 router
    "my_active_mlp = None": "my_active_mlp = 2 * 3 * 24 * check_cfg.d_ff + 24 * 8",
    "my_wall_clock_winner = None": (
        "my_wall_clock_winner = 'moe' if wall_table.moe_loss.iloc[-1] < wall_table.dense_loss.iloc[-1] else 'dense'"),
    # f = P = (1, 0, ..., 0): 8 x 1 x 1
    "my_collapsed_balance = None": "my_collapsed_balance = 8",
}


def test_moe_exercises_answered_and_button_pressed(smoke_env):  # noqa: F811
    text = answered_text(PATH, ANSWERS, PRESS, n_checks=3)
    assert "24 MoE runs" in text
    # the kit's count is the counter's matmuls plus the attention softmax, exactly (what is left: +0)
    assert re.search(r"MoE: kit [0-9,]+ FLOPs/token, counted [0-9,]+ \(\+\d\.\d\d%\).*: \+0 left", text), text
    for budget in map(re.escape, ("5e+11", "1e+12", "2e+12")):
        assert re.search(budget + r" FLOPs: MoE minus dense = [+-]0\.\d{4} nats/token \(90% interval", text), text
        assert re.search(budget + r" FLOPs: the best MoE \(d_model \d+, [0-9,]+ active\) is worth a dense model", text)
        assert re.search(budget + r" FLOPs, at most [0-9,]+ parameters: MoE 3\.\d{4}, best dense 3\.\d{4}", text)
        assert re.search(budget + r" FLOPs of dense time: the MoE runs x\d\.\d\d (slower|faster) per token", text), text
    assert re.search(r"coefficient 0: mean balance loss \d\.\d{3}", text), text
    assert re.search(r"the MoE holds x\d\.\d\d the dense model's weights and decodes at x\d\.\d\d its speed", text)
    status, arch, measurements = re.search(r"__router__ (\S+) (\S+) (\d+)", text).groups()
    assert (status, arch) == ("ok", "moe") and int(measurements) >= 2
