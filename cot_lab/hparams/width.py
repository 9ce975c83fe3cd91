"""Width transfer: does the best learning rate found at one width hold at another? Standard parametrisation against muP.

muP (Yang et al. 2022, arXiv 2203.03466; the kit's version is `core/mup.py`) claims that, with hidden-matrix init and
Adam rate scaled by width and the logits by 1/width, the best rate stops moving as the model widens, so a narrow
proxy can tune a wide model. Two measurements test that claim here:

- `coordinate_check` (their Sec. 6 and App. D): train each width a few steps at one rate and record how far each
  layer's activations have moved, per coordinate. Under muP the movement is the same at every width; under the
  standard parametrisation it grows with width (Adam's per-coordinate steps add up along fan-in directions).
- `width_sweeps`: an LR sweep at each width on the **same number of tokens** (muP's claim is about one training
  run made wider, not about a FLOP budget, where the wider model would also get fewer steps), and `transfer_table`:
  each width's best rate, and how far it moved.
"""
from __future__ import annotations

import math

import numpy as np

from cot_lab.core import validate
from cot_lab.core.accounting import flops_per_token
from cot_lab.core.callbacks import Callback
from cot_lab.core.config import ModelConfig
from cot_lab.data.base import Corpus
from cot_lab.hparams.sweeps import HparamSweep, sweep_grid
from cot_lab.scaling.sweep import SweepPlan, SweepPoint, run_sweep

HEAD_DIM = 8  # the kit widens by adding heads of this size (see core/mup.py on attention scaling)


def width_config(width: int, template: ModelConfig) -> ModelConfig:
    """`template` at d_model = `width`, with heads of HEAD_DIM and the default MLP ratio."""
    width = validate.integer("widths[]", width, low=2 * HEAD_DIM, hint=f"a multiple of {HEAD_DIM}, e.g. 32")
    if width % HEAD_DIM:
        raise ValueError(f"width={width} must be a multiple of the head size {HEAD_DIM} (e.g. {width - width % HEAD_DIM})")
    return template.replace(d_model=width, n_head=width // HEAD_DIM, n_kv_head=None)


def _widths(widths) -> list[int]:
    return sweep_grid("widths", widths, integer=True)


class _ActivationProbe(Callback):
    """After every step, each layer's mean |activation - its value at init| on fixed rows (per coordinate)."""

    def __init__(self, rows, width: int):
        self.rows, self.width, self.model, self.start, self.records = rows, width, None, None, []

    def _activations(self) -> dict[str, "torch.Tensor"]:
        import torch

        captured, hooks = {}, []
        core = self.model.model

        def keep(name):
            def hook(_module, _inputs, output):
                captured[name] = (output[0] if isinstance(output, tuple) else output).detach().float()
            return hook
        named = [("embedding", core.embed_tokens), *[(f"block {i + 1}", layer) for i, layer in enumerate(core.layers)],
                 ("logits", self.model.lm_head)]
        for name, module in named:
            hooks.append(module.register_forward_hook(keep(name)))
        try:
            with torch.no_grad():
                self.model(input_ids=self.rows.to(next(self.model.parameters()).device))
        finally:
            for hook in hooks:
                hook.remove()
        return captured

    def on_start(self, model) -> None:
        self.model = model
        self.start = self._activations()

    def on_step(self, state) -> None:
        for name, value in self._activations().items():
            change = float((value - self.start[name]).abs().mean())
            self.records.append(dict(width=self.width, step=state.step, layer=name, change=change))


def coordinate_check(template: ModelConfig, corpus: Corpus, *, widths=(32, 64, 128, 256), steps: int = 4,
                     lr: float = 1e-2, mup_base_width: int | None = None, batch_size: int = 4, seed: int = 0):
    """Yang et al.'s coordinate check: each width of `template` trained `steps` steps at a constant rate `lr`
    (fp32, no warmup), through the kit's trainer; returns a DataFrame (width, step, layer, change), where change
    is the mean |activation - activation at init| per coordinate on 4 fixed validation rows. Layers: "embedding",
    "block 1".., "logits". mup_base_width: None for the standard parametrisation, else muP at that base.
    """
    import pandas as pd

    from cot_lab.core.training import train

    steps = validate.integer("steps", steps, hint="optimizer steps per width, e.g. 4")
    rows = corpus.val_batch(4, template.seq_len)[:, :-1]
    records = []
    for width in _widths(widths):
        cfg = width_config(width, template)
        probe = _ActivationProbe(rows, width)
        train(cfg, corpus, tokens=steps * batch_size * cfg.seq_len, lr=lr, batch_size=batch_size, seed=seed,
              warmup=0.0, min_lr_ratio=1.0, precision="fp32", compile=False, eval_sequences=4, progress=False,
              callbacks=[probe], mup_base_width=mup_base_width)
        records += probe.records
    return pd.DataFrame(records)


def growth_exponents(check) -> dict[str, float]:
    """Per layer, the slope of log(change) against log(width) at the check's last step: ~0 means the layer moves
    the same at every width (muP's promise); ~1 means its movement grows in proportion to width."""
    last = check[check.step == check.step.max()]
    return {layer: float(np.polyfit(np.log(group.width), np.log(group.change), 1)[0])
            for layer, group in last.groupby("layer", sort=False)}


def width_sweeps(template: ModelConfig, corpus: Corpus, *, widths, tokens: float, lrs, batch_size: int = 4,
                 mup_base_width: int | None = None, store=None, seeds=(0,), workers: int = 1, progress: bool = True,
                 stop=None, report=None, **train_kwargs) -> dict[int, HparamSweep]:
    """An LR sweep at each width of `template` on the same `tokens` training tokens; {width: HparamSweep}.

    One plan and one progress bar over all of it, resumable through `store`; each width's rates train as one
    batched group. mup_base_width: None, the standard parametrisation; else muP with that base width.
    """
    tokens = validate.number("tokens", tokens, hint="training tokens per run, e.g. 5e5")
    rates = sweep_grid("lrs", lrs, integer=False)
    batch_size = validate.integer("batch_size", batch_size)
    points = []
    for width in _widths(widths):
        cfg = width_config(width, template)
        if tokens < batch_size * cfg.seq_len:
            raise ValueError(f"tokens={tokens:.3g} is less than one step of batch_size={batch_size} x "
                             f"seq_len={cfg.seq_len}; raise tokens or lower batch_size")
        points += [SweepPoint(tokens * flops_per_token(cfg), cfg, batch_size, lr) for lr in rates]
    if mup_base_width is not None:
        train_kwargs["mup_base_width"] = mup_base_width
    result = run_sweep(SweepPlan(points), corpus, store, seeds=list(seeds), workers=workers, progress=progress,
                       stop=stop, report=report, **train_kwargs)
    by_width: dict[int, list] = {}
    for run in result.runs:
        by_width.setdefault(run.config.d_model, []).append(run)
    return {w: HparamSweep("lr", sorted(runs, key=lambda r: r.hparams["lr"]), result.interrupted,
                           float(sum(r.wall_s for r in runs))) for w, runs in sorted(by_width.items())}


def transfer_table(sweeps: dict[int, HparamSweep]):
    """One row per width: best_lr (vertex of the parabola in log lr), best_loss (nats/token), interior, and
    octaves_from_narrowest = log2(best_lr / the narrowest width's best_lr): 0 where the optimum transfers."""
    import pandas as pd

    rows = []
    for width, sweep in sorted(sweeps.items()):
        lr, loss, interior = sweep.best()
        rows.append(dict(width=width, best_lr=lr, best_loss=loss, interior=interior))
    frame = pd.DataFrame(rows)
    frame["octaves_from_narrowest"] = [math.log2(lr / frame.best_lr.iloc[0]) for lr in frame.best_lr]
    return frame


TRANSFER_OCTAVES = 0.5  # best rates within half the sweep grid's 2x step of each other count as "the same rate"


def transfer_verdict(tables: dict) -> str:
    """One sentence per parametrisation from `transfer_table` frames ({"standard": ..., "mup": ...}): how far the
    best rate moved across the widths, and whether that counts as transferring (within TRANSFER_OCTAVES)."""
    sentences = []
    for name, table in tables.items():
        spread = math.log2(table.best_lr.max() / table.best_lr.min())
        drift = float(table.octaves_from_narrowest.iloc[-1])
        widths = f"d_model {int(table.width.min())} to {int(table.width.max())}"
        way = "up" if drift > 0 else "down"
        moved = (f"the best rate stays within x{2 ** spread:.2f} ({spread:.2f} octaves)" if spread <= TRANSFER_OCTAVES
                 else f"the best rate moves by x{2 ** spread:.2f} ({spread:.2f} octaves; the widest is "
                      f"{abs(drift):.2f} octaves {way} from the narrowest)")
        verdict = "it transfers" if spread <= TRANSFER_OCTAVES else "it does not transfer"
        sentences.append(f"{name}: from {widths}, {moved}: {verdict}.")
    return " ".join(sentences)
