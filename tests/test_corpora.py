"""Real-text corpora, BPE tokenizers and the load_corpus dispatcher, checked on real values."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cot_lab.data import Corpus, TextCorpus, load_corpus
from cot_lab.data import hub
from cot_lab.data import text as text_mod
from cot_lab.data import tokenizer as tok_mod
from cot_lab.data.tokenizer import EOT, train_bpe
from cot_lab.core.paths import subdir


@pytest.fixture(scope="module", autouse=True)
def home(tmp_path_factory):
    """One COT_LAB_HOME for the module, so the corpora below are built once; the hub is offline."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("cot_lab_home")
        mp.setenv("COT_LAB_HOME", str(path))
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield path


@pytest.fixture(scope="module")
def topics() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)][:40]  # ~200 KB of English


@pytest.fixture(scope="module")
def docs(home) -> TextCorpus:
    return load_corpus("python-docs")


@pytest.fixture(scope="module")
def code(home) -> TextCorpus:
    return load_corpus("python-code")


@pytest.fixture(scope="module")
def code_in_docs_tokens(home, docs) -> TextCorpus:
    return load_corpus("python-code", tokenizer=docs.tokenizer)


# ---- tokenizer ---------------------------------------------------------------------------


def test_tokenizer_round_trips_text_exactly(topics):
    tok = train_bpe(topics, 300)
    probes = topics[:3] + ["  leading spaces\tand tabs\r\n\n", "naïve café — 東京 🙂", "\x00\x7f\x1b[0m", ""]
    for s in probes:
        assert tok.decode(tok.encode(s).ids, skip_special_tokens=False) == s
    # Its 43 merges pay: in-domain English takes 0.71 tokens per byte here, not 1.
    english = "\n".join(topics[:5])
    assert len(tok.encode(english).ids) < 0.8 * len(english.encode())


def test_tokenizer_cache_hit_loads_the_same_file(topics, monkeypatch):
    first = train_bpe(topics, 320)
    path = subdir("tokenizers") / f"{tok_mod.cache_key(topics, 320)}.json"
    assert path.exists()
    files = sorted(subdir("tokenizers").glob("*"))

    def boom(*args, **kwargs):
        raise AssertionError("retrained despite the cache")

    monkeypatch.setattr(tok_mod, "_train", boom)
    second = train_bpe(iter(topics), 320)  # any iterable of the same texts hits the same entry
    assert sorted(subdir("tokenizers").glob("*")) == files
    assert second.to_str() == first.to_str()
    probe = topics[7]
    assert second.encode(probe).ids == first.encode(probe).ids
    with pytest.raises(AssertionError, match="retrained"):  # another vocab size is another entry
        train_bpe(topics, 321)


def test_tokenizer_ids_are_below_vocab_size(topics):
    tok = train_bpe(topics, 300)
    assert tok.get_vocab_size() == 300
    assert tok.token_to_id(EOT) == 0
    ids = np.concatenate([tok.encode(t).ids for t in topics])
    assert ids.max() == 299  # the last merge is used, and nothing beyond it
    assert ids.min() >= 1  # end-of-text only where a corpus puts it
    used = np.unique(ids)
    assert len(used) > 120 and np.isin(np.arange(257, 300), used).all()  # every merge shows up


@pytest.mark.parametrize("bad", [0, 100, 256, 70_000, 512.0, True])
def test_vocab_size_out_of_range_is_rejected(bad):
    with pytest.raises(ValueError, match=r"vocab_size=.*(257|int)"):
        train_bpe(["some text"], bad)
    with pytest.raises(ValueError, match="vocab_size"):
        load_corpus("python-docs", vocab_size=bad)


# ---- python-docs / python-code ------------------------------------------------------------


def test_python_docs_is_large_deterministic_and_cached(docs):
    assert isinstance(docs, Corpus) and docs.name == "python-docs"
    assert docs.vocab_size == 512 and docs.entropy is None and docs.entropy_se is None
    assert docs.train_tokens > 1_000_000
    assert 0.03 <= docs.val_tokens / (docs.train_tokens + docs.val_tokens) <= 0.15
    assert docs.n_documents > 500 and len(docs.val_documents) >= 10
    again = load_corpus("python-docs")
    assert again.fingerprint == docs.fingerprint
    assert isinstance(again.train, np.memmap)  # read from the cache, not rebuilt in memory
    batch = docs.val_batch(8, 128)
    assert batch.dtype == torch.int64 and batch.shape == (8, 129)
    assert torch.equal(batch, again.val_batch(8, 128))
    assert 0 <= int(batch.min()) and int(batch.max()) < 512
    prose = docs.decode(docs.val[:20_000])
    assert prose.count(" the ") > 100


def test_python_code_is_larger_than_docs_and_is_code(code, docs):
    assert code.name == "python-code" and code.fingerprint != docs.fingerprint
    assert code.train_tokens > 3_000_000 and code.train_tokens > 2 * docs.train_tokens
    assert code.val_tokens > 50_000
    assert all(name.endswith(".py") for name in code.val_documents)
    assert not any(name.startswith(("test/", "idlelib/", "lib2to3/")) for name in code.val_documents)
    source = code.decode(code.val[:20_000])
    assert source.count("def ") > 20 and source.count("return") > 20


def test_docs_split_is_disjoint_by_document(docs):
    from pydoc_data.topics import topics

    root = text_mod._stdlib_files(text_mod._SKIP_DIRS)[0]

    def document(name: str) -> str:
        kind, _, key = name.partition(":")
        return topics[key] if kind == "topic" else text_mod._docstrings(root / key)

    val = {name: document(name) for name in docs.val_documents}
    assert all(val.values())
    # The val split is exactly these documents, whole, each followed by end-of-text.
    assert sum(len(enc.ids) + 1 for enc in docs.tokenizer.encode_batch(list(val.values()))) == docs.val_tokens
    train_text = docs.decode(docs.train)
    long_val = [t for t in val.values() if len(t) > 300]
    assert len(long_val) >= 5
    for text in long_val:
        assert text not in train_text
    # The same check finds documents of the train side.
    long_train = [t for k, t in sorted(topics.items()) if f"topic:{k}" not in val and len(t) > 300][:20]
    assert len(long_train) == 20 and all(t in train_text for t in long_train)


def _rows(corpus, batch_size, n_batches, seq_len=64, seed=3):
    it = corpus.train_batches(batch_size, seq_len, seed)
    return torch.cat([next(it) for _ in range(n_batches)])


def test_train_batches_are_seeded_and_independent_of_batch_size(docs):
    rows = _rows(docs, 4, 6)
    assert rows.dtype == torch.int64 and rows.shape == (24, 65)
    assert torch.equal(rows, _rows(docs, 12, 2)) and torch.equal(rows, _rows(docs, 24, 1))
    assert torch.equal(_rows(docs, 1500, 1), _rows(docs, 500, 3))  # across the offset-block boundary
    assert not torch.equal(rows, _rows(docs, 24, 1, seed=4))
    train = np.asarray(docs.train)
    for row in rows[:3].numpy():  # each row is a contiguous window of the train split
        starts = np.flatnonzero(train[: train.size - 64] == row[0])
        assert any(np.array_equal(train[s : s + 65], row) for s in starts)


def test_val_batch_caps_n_and_rejects_seq_len_too_long(docs):
    fits = docs.val_tokens // 257
    everything = docs.val_batch(10**9, 256)
    assert everything.shape == (fits, 257)
    # One window as long as the split is the whole split.
    assert torch.equal(docs.val_batch(1, docs.val_tokens - 1)[0], torch.from_numpy(np.asarray(docs.val, dtype=np.int64)))
    with pytest.raises(ValueError, match=rf"seq_len={docs.val_tokens}.*validation split.*seq_len <= {docs.val_tokens - 1}"):
        docs.val_batch(1, docs.val_tokens)
    with pytest.raises(ValueError, match="n_sequences=0"):
        docs.val_batch(0, 64)
    with pytest.raises(ValueError, match="batch_size=0"):
        docs.train_batches(0, 64, seed=0)
    with pytest.raises(ValueError, match="seed=-1"):
        docs.train_batches(8, 64, seed=-1)


def test_val_windows_are_evenly_spaced_and_disjoint(docs):
    batch = docs.val_batch(5, 100).numpy()
    val = np.asarray(docs.val)
    starts = [(docs.val_tokens - 101) * k // 4 for k in range(5)]
    for row, s in zip(batch, starts):
        assert np.array_equal(row, val[s : s + 101])
    assert min(np.diff(starts)) >= 101


def test_code_is_out_of_distribution_for_docs(docs, code, code_in_docs_tokens):
    c = code_in_docs_tokens
    assert c.vocab_size == 512 and c.fingerprint not in (code.fingerprint, docs.fingerprint)
    assert c.decode(c.val[:2000]) == code.decode(code.val[:4000])[: len(c.decode(c.val[:2000]))]
    assert code.train_tokens < 0.95 * c.train_tokens  # code's own tokenizer compresses code better

    def unigram(tokens) -> np.ndarray:  # add-one smoothed log-probabilities, nats
        counts = np.bincount(np.asarray(tokens), minlength=512) + 1.0
        return np.log(counts / counts.sum())

    def xent(logp, tokens) -> float:
        return float(-logp[np.asarray(tokens)].mean())

    on_docs, on_code = unigram(docs.train), unigram(c.train)
    # Measured here: docs model 5.26 on docs val, 5.39 on code val.
    assert xent(on_docs, c.val) > xent(on_docs, docs.val) + 0.07
    assert xent(on_code, docs.val) > xent(on_docs, docs.val) + 0.07
    assert xent(on_code, c.val) < xent(on_docs, c.val)


# ---- local files ---------------------------------------------------------------------------


def test_local_file_is_split_by_contiguous_chunk(tmp_path, topics):
    text = "\n\n".join(topics).encode("ascii", "ignore").decode()
    path = tmp_path / "book.txt"
    path.write_text(text)
    corpus = load_corpus(str(path), vocab_size=400, licence="CC-BY-4.0")
    assert corpus.split == "chunk" and corpus.n_documents == 1 and corpus.val_documents == ("book.txt",)
    total = corpus.train_tokens + corpus.val_tokens
    assert abs(corpus.val_tokens - 0.05 * total) <= 1
    assert corpus.decode(corpus.train) + corpus.decode(corpus.val) == text + EOT
    assert load_corpus(path, vocab_size=400, licence="CC-BY-4.0").fingerprint == corpus.fingerprint  # a PathLike too


def _write_folder(root, topics):
    names = []
    for i, t in enumerate(topics):
        rel = f"part{i % 3}/doc{i:02d}.md"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(t)
        names.append(rel)
    (root / "figure.png").write_bytes(b"\x89PNG\r\n\x1a\nnot text")
    (root / ".git").mkdir()
    (root / ".git" / "notes.txt").write_text("HIDDEN-MARKER")
    return names


def test_local_folder_is_split_by_file(tmp_path, topics, monkeypatch):
    root = tmp_path / "notes"
    names = _write_folder(root, topics)
    corpus = load_corpus(root, vocab_size=300, licence="MIT")
    assert corpus.vocab_size == 300 and corpus.split == "documents"
    assert corpus.n_documents == len(topics)
    assert corpus.val_documents and set(corpus.val_documents) < set(names)
    assert corpus.val_tokens >= 0.03 * (corpus.train_tokens + corpus.val_tokens)
    train_text, val_text = corpus.decode(corpus.train), corpus.decode(corpus.val)
    for name, t in zip(names, topics):
        in_val = name in corpus.val_documents
        assert (t in val_text) == in_val and (t in train_text) != in_val
    assert "HIDDEN-MARKER" not in train_text + val_text and "PNG" not in train_text + val_text
    # A rebuild from nothing (new home: tokenizer retrained) gives the very same tokens.
    monkeypatch.setenv("COT_LAB_HOME", str(tmp_path / "fresh-home"))
    rebuilt = load_corpus(str(root), vocab_size=300, licence="MIT")
    assert rebuilt.fingerprint == corpus.fingerprint
    assert np.array_equal(rebuilt.train, corpus.train) and np.array_equal(rebuilt.val, corpus.val)
    assert not list((tmp_path / "fresh-home" / "corpora").glob("*.tmp")) and not list(
        (tmp_path / "fresh-home" / "corpora").glob("*.raw")
    )


def test_empty_folders_and_blank_files_are_rejected(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"path=.*empty.*no text files"):
        load_corpus(empty)
    blank = tmp_path / "blank"
    blank.mkdir()
    (blank / "a.txt").write_text("  \n\t")
    (blank / "b.md").write_text("")
    with pytest.raises(ValueError, match="holds no text"):
        load_corpus(blank, licence="MIT")
    assert not [p for p in subdir("corpora").iterdir() if p.suffix in (".tmp", ".raw")]


def test_tiny_corpus_rejects_seq_len_longer_than_train(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text("A short note about tokens. " * 10)
    corpus = load_corpus(path, licence="proprietary, own use")
    with pytest.raises(ValueError, match=rf"seq_len=1000 .*train split.*seq_len <= {corpus.train_tokens - 1}"):
        corpus.train_batches(2, 1000, seed=0)


def test_local_text_without_a_licence_is_refused_saying_how_to_declare_one(tmp_path, topics):
    root = tmp_path / "unlicensed"
    _write_folder(root, topics[:6])
    for target in (root, root / "part0" / "doc00.md"):  # a folder, and a single file (its own folder is looked in)
        with pytest.raises(ValueError) as err:
            load_corpus(target)
        msg = str(err.value)
        assert "no licence information" in msg and 'licence="CC-BY-4.0"' in msg and "cl.load_corpus(" in msg
        assert "LICENSE file" in msg and str(target if target.is_dir() else target.parent) in msg
        assert "datasheet" in msg.lower() and "terms" in msg  # why: governance
    with pytest.raises(ValueError, match=r"licence='  ' must be a non-empty string"):
        load_corpus(root, licence="  ")
    with pytest.raises(ValueError, match=r"licence=3 must be a non-empty string"):
        load_corpus(root, licence=3)


def test_licence_file_is_detected_and_is_not_a_document(tmp_path, topics):
    root = tmp_path / "licensed"
    names = _write_folder(root, topics[:8])
    plain = load_corpus(root, vocab_size=300, licence="MIT")
    assert (plain.licence, plain.licence_source) == ("MIT", "argument")
    (root / "LICENSE.txt").write_text("MIT License\n\nCopyright (c) 2024 Someone\n\nPermission is hereby granted, "
                                      "free of charge, to any person obtaining a copy of this software ...\n")
    found = load_corpus(root, vocab_size=300)
    assert (found.licence, found.licence_source) == ("MIT", "file:LICENSE.txt")
    # The licence file is no document: the same tokens, so the same fingerprint, as without it.
    assert found.fingerprint == plain.fingerprint and found.n_documents == len(names)
    assert "Permission is hereby granted" not in found.decode(found.train) + found.decode(found.val)
    single = load_corpus(root / "part1" / "doc01.md", vocab_size=300, licence="CC-BY-4.0")
    assert single.licence == "CC-BY-4.0"
    with pytest.raises(ValueError, match="no licence information"):  # part1/ itself holds no licence file
        load_corpus(root / "part1" / "doc01.md", vocab_size=300)
    (root / "part1" / "COPYING").write_text("SPDX-License-Identifier: GPL-3.0-or-later\n")
    nested = load_corpus(root / "part1" / "doc01.md", vocab_size=300)
    assert (nested.licence, nested.licence_source) == ("GPL-3.0-or-later", "file:COPYING")
    assert nested.fingerprint == single.fingerprint


def test_licence_argument_wins_over_the_file_and_never_changes_the_fingerprint(tmp_path, topics):
    root = tmp_path / "both"
    _write_folder(root, topics[:8])
    (root / "LICENCE.md").write_text("Creative Commons Attribution 4.0 International Public License\n")
    from_file = load_corpus(root, vocab_size=300)
    assert (from_file.licence, from_file.licence_source) == ("CC-BY-4.0", "file:LICENCE.md")
    given = load_corpus(root, vocab_size=300, licence="proprietary, own use")
    assert (given.licence, given.licence_source) == ("proprietary, own use", "argument")
    other = load_corpus(root, vocab_size=300, licence="CC0-1.0")
    assert from_file.fingerprint == given.fingerprint == other.fingerprint
    assert np.array_equal(given.train, other.train) and np.array_equal(given.val, other.val)


@pytest.mark.parametrize("text, spdx", [
    ("Apache License\nVersion 2.0, January 2004", "Apache-2.0"),
    ("PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2\n...", "PSF-2.0"),
    ("Redistribution and use in source and binary forms ... Neither the name of", "BSD-3-Clause"),
    ("GNU LESSER GENERAL PUBLIC LICENSE\nVersion 2.1, February 1999 ... GNU General Public License", "LGPL-2.1"),
    ("Our own terms: read only, do not share.", "see LICENSE"),
])
def test_licence_texts_are_read_as_spdx_identifiers(text, spdx):
    assert text_mod.licence_of_text(text) == spdx


def test_cpython_corpora_are_under_the_psf_licence(docs, code):
    for corpus in (docs, code):
        assert corpus.licence == "PSF-2.0" and "docs.python.org/3/license.html" in corpus.licence_source
    assert [text_mod.is_licence_file(n) for n in ("LICENSE", "license.md", "LICENCE.txt", "COPYING.LESSER",
                                                  "LICENSE-MIT", "licenses.md", "README.md")] == [True] * 5 + [False] * 2


# ---- dispatcher and hub -------------------------------------------------------------------


def test_unknown_names_list_what_works():
    with pytest.raises(ValueError) as err:
        load_corpus("wikipedia")
    for option in ("synthetic", "python-docs", "python-code", "path", "hf:"):
        assert option in str(err.value)
    with pytest.raises(ValueError, match="Did you mean 'python-docs'"):
        load_corpus("python_docs")
    with pytest.raises(ValueError, match="name=3"):
        load_corpus(3)


@pytest.mark.parametrize("name", ["./no/such/file.txt", "/no/such/folder", "~/cot-lab-missing-dir", "notes.md"])
def test_missing_paths_raise_file_not_found(name):
    with pytest.raises(FileNotFoundError, match=name.replace(".", r"\.")):
        load_corpus(name)


def test_missing_pathlike_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing-folder"):
        load_corpus(tmp_path / "missing-folder")


def test_shared_tokenizer_must_fit_vocab_size(tmp_path, docs):
    path = tmp_path / "a.txt"
    path.write_text("some text " * 100)
    with pytest.raises(ValueError, match="vocab_size=300.*512"):
        load_corpus(path, vocab_size=300, tokenizer=docs.tokenizer, licence="MIT")


@pytest.mark.parametrize("name", ["hf:cot-lab-made-up/no-such-dataset", "cot-lab-made-up/no-such-dataset"])
def test_hub_offline_raises_connection_error_naming_offline_corpora(name):
    with pytest.raises(ConnectionError) as err:  # HF_HUB_OFFLINE=1 from the module fixture
        load_corpus(name)
    msg = str(err.value)
    assert isinstance(err.value, hub.HubUnavailableError)
    assert "could not reach the hugging face hub" in msg.lower() and "HF_HUB_OFFLINE=1" in msg
    for works in ("synthetic", "python-docs", "python-code", "path"):
        assert works in msg


def test_unreachable_hub_fails_fast_without_offline_flag(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused at once
    with pytest.raises(ConnectionError, match="cannot connect to http://127.0.0.1:9.*python-docs"):
        load_corpus("hf:cot-lab-made-up/no-such-dataset")


def test_hub_corpus_streams_max_chars_and_is_reused_offline(monkeypatch, topics):
    datasets = pytest.importorskip("datasets")
    calls = []

    def fake_load_dataset(name, split, streaming):
        calls.append((name, split, streaming))
        return ({"text": t, "id": i} for i, t in enumerate(topics))

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setattr(hub, "_offline_reason", lambda: None)
    corpus = load_corpus("hf:someone/fake-books", max_chars=50_000, vocab_size=300)
    assert calls == [("someone/fake-books", "train", True)]
    assert corpus.name == "hf:someone/fake-books" and corpus.vocab_size == 300
    n_rows = next(i for i in range(len(topics)) if sum(map(len, topics[: i + 1])) >= 50_000) + 1
    assert corpus.n_documents == n_rows
    chars = len(corpus.decode(corpus.train)) + len(corpus.decode(corpus.val)) - n_rows * len(EOT)
    assert chars == 50_000
    with pytest.raises(ValueError, match=r"text_field='body'.*\['id', 'text'\]"):
        load_corpus("hf:someone/fake-books", text_field="body")

    monkeypatch.undo()  # back to HF_HUB_OFFLINE=1 and the real datasets: the built corpus is reused
    again = load_corpus("hf:someone/fake-books", max_chars=50_000, vocab_size=300)
    assert again.fingerprint == corpus.fingerprint and len(calls) == 2
    with pytest.raises(ConnectionError):  # a different request is not in the cache
        load_corpus("hf:someone/fake-books", max_chars=40_000, vocab_size=300)


def test_synthetic_name_dispatches_to_synthetic_corpus():
    synthetic = pytest.importorskip("cot_lab.data.synthetic")
    assert type(load_corpus("synthetic")) is synthetic.SyntheticCorpus
