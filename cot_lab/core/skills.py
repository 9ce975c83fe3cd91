"""`loss_by_skill`: a model's validation loss and the exact floor, split by the skill of the language behind each token.

Only a corpus whose generator knows why each token came can split its loss (the synthetic
language: `SyntheticCorpus.skill_split`). Each token's loss splits exactly in two, its class
(-log q(class), q summed over the class's block of ids) and the word given its class, and each
part goes to one skill: so the skills' shares of the loss sum to the model's loss, and their
floors to the exact floor, to rounding. A skill's excess (model minus floor) is what the model
has still to learn there; it is never negative in expectation (see `data/synthetic_skills.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from cot_lab.core.evaluate import DEFAULT_EVAL_SEQUENCES
from cot_lab.core.validate import integer

EVAL_BATCH = 32  # rows per forward: bounds the [rows, T, vocab] log-probabilities in memory


@dataclass
class SkillReport:
    """The loss of one model split by skill, on `positions` validation tokens.

    frame: a pandas DataFrame, one row per skill: part ("class" or "word"), uses (parts
    labelled with it), share (uses per token), floor, model and excess (nats per token of the
    corpus: each column sums to the totals), floor_per_use and model_per_use (nats per use).
    units: one row per knowledge fact (a preference-table row) seen: skill, unit, uses, floor
    and model per use. floor, model: the totals, nats/token.
    """

    frame: object
    units: object
    floor: float
    model: float
    positions: int
    label: str = ""
    meta: dict = field(default_factory=dict)

    @property
    def excess(self) -> float:
        """Model loss minus the floor, nats/token: what is left to learn."""
        return self.model - self.floor

    def to_dict(self) -> dict:
        """JSON-able: the totals and one entry per skill (units left out: they are large)."""
        return dict(label=self.label, floor=self.floor, model=self.model, positions=self.positions,
                    skills=self.frame.to_dict(orient="records"), **self.meta)

    def __repr__(self) -> str:
        return (f"SkillReport({self.label or 'model'}: loss {self.model:.4f} = floor {self.floor:.4f} + excess "
                f"{self.excess:.4f} nats/token over {len(self.frame)} skills, {self.positions:,} tokens)")


def model_parts(model, rows: torch.Tensor, token_class: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(-log q(class of token_t), -log q(token_t | its class)) of `model` on rows [n, T + 1]: float64 [n, T] each.

    q(class) sums the model's probabilities over the block of ids of the token's class, in float64.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    onehot = torch.zeros(len(token_class), int(token_class.max()) + 1, dtype=torch.float64)
    onehot[torch.arange(len(token_class)), torch.from_numpy(token_class)] = 1.0
    token_class = torch.from_numpy(token_class)
    class_nats, word_nats = [], []
    with torch.no_grad():
        for start in range(0, rows.shape[0], EVAL_BATCH):
            chunk = rows[start:start + EVAL_BATCH]
            logits = model(input_ids=chunk[:, :-1].to(device)).logits.double().cpu()  # [b, T, vocab]
            logp = torch.log_softmax(logits, dim=-1)
            target = chunk[:, 1:]
            token_nats = -logp.gather(-1, target[..., None])[..., 0]                   # [b, T]
            class_logp = torch.log(logp.exp() @ onehot)                                  # [b, T, classes]
            c_nats = -class_logp.gather(-1, token_class[target][..., None])[..., 0]
            class_nats.append(c_nats.numpy())
            word_nats.append((token_nats - c_nats).numpy())
    model.train(was_training)
    return np.concatenate(class_nats), np.concatenate(word_nats)


def _skill_table(split: dict, model_class: np.ndarray, model_word: np.ndarray):
    import pandas as pd

    positions = split["floor_class"].size
    rows = []
    for index, name in enumerate(split["skills"]):
        for part, labels, floor, model in (("class", split["class_skill"], split["floor_class"], model_class),
                                           ("word", split["word_skill"], split["floor_word"], model_word)):
            mask = labels == index
            if not mask.any():
                continue
            uses, f, m = int(mask.sum()), float(floor[mask].sum()), float(model[mask].sum())
            rows.append(dict(skill=name, part=part, uses=uses, share=uses / positions, floor=f / positions,
                             model=m / positions, excess=(m - f) / positions, floor_per_use=f / uses,
                             model_per_use=m / uses))
    return pd.DataFrame(rows)


def _unit_table(split: dict, model_word: np.ndarray):
    import pandas as pd

    has_unit = split["unit"] >= 0
    skill, unit = split["word_skill"][has_unit], split["unit"][has_unit]
    floor, model = split["floor_word"][has_unit], model_word[has_unit]
    key = skill * (int(unit.max(initial=0)) + 1) + unit
    keys, inverse, uses = np.unique(key, return_inverse=True, return_counts=True)
    f, m = np.bincount(inverse, floor), np.bincount(inverse, model)
    names = np.array(split["skills"])
    width = int(unit.max(initial=0)) + 1
    return pd.DataFrame(dict(skill=names[keys // width], unit=keys % width, uses=uses, floor_per_use=f / uses,
                             model_per_use=m / uses, excess_per_use=(m - f) / uses))


def loss_by_skill(model_or_run, corpus, *, n_sequences: int = 4 * DEFAULT_EVAL_SEQUENCES,
                  seq_len: int | None = None) -> SkillReport:
    """Split a model's validation loss and the exact floor by skill (nats/token); see SkillReport.

    model_or_run: a trained model or a cl.Run (its model is loaded from memory or the store);
    corpus: one that knows why each token came (the synthetic language: 'synthetic' or
    'synthetic-v3'); n_sequences validation rows of seq_len tokens (None: the model's context).
    """
    if not hasattr(corpus, "skill_split"):
        raise ValueError(f"corpus={corpus!r} cannot split a loss by skill: only a generated language knows why "
                         "each token came; use cl.load_corpus('synthetic') or cl.load_corpus('synthetic-v3')")
    n_sequences = integer("n_sequences", n_sequences, hint="validation rows, e.g. 512")
    label = ""
    if isinstance(model_or_run, torch.nn.Module):
        model = model_or_run
    elif hasattr(model_or_run, "load_model"):
        model, label = model_or_run.load_model(), f"run {model_or_run.run_id}"
        # a run trained on the unshifted language may be tested on a shift of it: that is the shift's lesson
        known = {corpus.fingerprint, getattr(corpus, "unshifted_fingerprint", corpus.fingerprint)}
        if getattr(model_or_run, "corpus_fingerprint", corpus.fingerprint) not in known:
            raise ValueError(f"model_or_run: run {model_or_run.run_id} was trained on another corpus "
                             f"({model_or_run.corpus!r}, fingerprint {model_or_run.corpus_fingerprint}); pass that one")
    else:
        raise ValueError(f"model_or_run={type(model_or_run).__name__} must be a trained model or a cl.Run")
    if model.config.vocab_size != corpus.vocab_size:
        raise ValueError(f"model_or_run has vocab_size {model.config.vocab_size}, corpus {corpus.vocab_size}: "
                         "pass the corpus the model was trained on")
    context = int(model.config.max_position_embeddings)
    seq_len = context if seq_len is None else integer("seq_len", seq_len, high=context,
                                                      hint=f"at most the model's context, {context}")
    rows = corpus.val_batch(n_sequences, seq_len)
    split = corpus.skill_split(rows)
    model_class, model_word = model_parts(model, rows, split["token_class"])
    floor = float((split["floor_class"] + split["floor_word"]).mean())
    return SkillReport(frame=_skill_table(split, model_class, model_word), units=_unit_table(split, model_word),
                       floor=floor, model=float((model_class + model_word).mean()), positions=model_class.size,
                       label=label)
