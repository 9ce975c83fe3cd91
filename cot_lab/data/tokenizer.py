"""Byte-level BPE tokenizers for real text, trained with `tokenizers` and cached by content hash."""
from __future__ import annotations

import hashlib
from typing import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from cot_lab.core import validate
from cot_lab.core.io import atomic_path
from cot_lab.core.paths import subdir

# Bump when the training recipe changes, so stale cached tokenizers are not reused.
VERSION = "bpe-bytelevel-v1"
EOT = "<|endoftext|>"
N_BYTES = 256
MIN_VOCAB = N_BYTES + 1  # every byte plus the end-of-text token: anything less cannot encode all text
MAX_VOCAB = 2**16  # token arrays are stored as uint16


def check_vocab_size(vocab_size: int) -> int:
    """The vocab_size as an int, or a ValueError saying which sizes work."""
    return validate.integer("vocab_size", vocab_size, low=MIN_VOCAB, high=MAX_VOCAB,
                            hint=f"a byte-level BPE needs {N_BYTES} byte ids + the {EOT} token, and token arrays "
                                 "are uint16; e.g. vocab_size=512")


def cache_key(texts: list[str], vocab_size: int) -> str:
    """Hex sha256 over the recipe version, the vocabulary size and the training texts."""
    h = hashlib.sha256(f"{VERSION}\0{vocab_size}\0{len(texts)}\0".encode())
    for text in texts:
        data = text.encode("utf-8", errors="surrogatepass")
        h.update(len(data).to_bytes(8, "little"))  # length prefix: ["ab", "c"] != ["a", "bc"]
        h.update(data)
    return h.hexdigest()


def _train(texts: list[str], vocab_size: int) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    # No prefix space, so decode(encode(text)) == text exactly.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # all 256 bytes, seen or not
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def train_bpe(texts: Iterable[str], vocab_size: int = 512) -> Tokenizer:
    """A byte-level BPE with at most vocab_size ids (id 0 = end-of-text), loaded from cache when trained before."""
    vocab_size = check_vocab_size(vocab_size)
    if isinstance(texts, str):
        raise ValueError("texts must be an iterable of strings, not one string: pass [text]")
    texts = list(texts)
    bad = next((t for t in texts if not isinstance(t, str)), None)
    if bad is not None:
        raise ValueError(f"texts must all be str; got a {type(bad).__name__}")
    if not any(texts):
        raise ValueError("texts is empty: a tokenizer needs some training text")
    path = subdir("tokenizers") / f"{cache_key(texts, vocab_size)}.json"
    if path.exists():
        return Tokenizer.from_file(str(path))
    tokenizer = _train(texts, vocab_size)
    with atomic_path(path) as tmp:  # a crash never leaves a half-written cache file behind
        tokenizer.save(str(tmp))
    return tokenizer


def tokenizer_hash(tokenizer: Tokenizer) -> str:
    """Hex sha256 of a tokenizer's serialised form: equal hashes encode text identically."""
    return hashlib.sha256(tokenizer.to_str().encode()).hexdigest()


def eot_id(tokenizer: Tokenizer) -> int:
    """The id of the end-of-text token, or a ValueError if the tokenizer lacks one."""
    idx = tokenizer.token_to_id(EOT)
    if idx is None:
        raise ValueError(f"tokenizer has no {EOT!r} token: train it with train_bpe()")
    return idx
