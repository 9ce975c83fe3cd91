"""The written part of a datasheet: Gebru et al.'s seven sections, per kind of corpus, from what the code does.

Gebru et al. 2018, "Datasheets for Datasets" (arXiv 1803.09010), Sec. 3: motivation, composition, collection
process, preprocessing/cleaning/labelling, uses, distribution, maintenance. The measured facts (token counts,
duplicate rate, overlap, plants) are in `datasheet`; the text here says what each kind of corpus is, how it is
made and under which terms, as the loaders in `cot_lab.data` make it. A kind no loader here makes gets sections
that say nothing is recorded: fill them in with `dataclasses.replace(sheet, motivation=...)`.
"""
from __future__ import annotations

import platform

from cot_lab.data.base import Corpus
from cot_lab.data.synthetic import ENTROPY_TOKENS, SyntheticCorpus
from cot_lab.data.text import CPYTHON_LICENCE, TEXT_EXTENSIONS, TextCorpus
from cot_lab.data.text_build import BUILD_VERSION, CHUNK_VAL_FRACTION, MIN_VAL_FRACTION, SAMPLE_CHARS, VAL_EVERY

SECTIONS = ("motivation", "composition", "collection", "preprocessing", "uses", "distribution", "maintenance")
HEADINGS = {"motivation": "Motivation", "composition": "Composition", "collection": "Collection process",
            "preprocessing": "Preprocessing, cleaning and labelling", "uses": "Uses",
            "distribution": "Distribution", "maintenance": "Maintenance"}
KIT_LICENCE = "MIT"  # pyproject.toml: `license = "MIT"`, the cot-lab package's own terms
CPYTHON_TERMS = ("CPython's documentation and standard library are under the PSF License Agreement, version 2 "
                 "(SPDX PSF-2.0), https://docs.python.org/3/license.html; code examples in the documentation are "
                 "also offered under the Zero-Clause BSD licence (0BSD), and the few stdlib modules that include "
                 "third-party code are listed there under 'Licenses and Acknowledgements for Incorporated Software'.")
NOT_RECORDED = "Not recorded: cot-lab does not know this; fill it in before sharing the corpus or results on it."


def kind_of(corpus: Corpus) -> str:
    """'synthetic', 'synthetic-v3' (other versions 'synthetic-v<n>'), 'python-docs', 'python-code', 'hub',
    'local' or 'other': which table of sections describes `corpus` (a contaminated corpus: its base's)."""
    base = getattr(corpus, "base", None)
    if isinstance(base, Corpus):
        return kind_of(base)
    if isinstance(corpus, SyntheticCorpus):
        return "synthetic" if corpus.version == 2 else f"synthetic-v{corpus.version}"
    if isinstance(corpus, TextCorpus):
        if corpus.name in ("python-docs", "python-code"):
            return corpus.name
        return "hub" if corpus.name.startswith("hf:") else "local"
    return "other"


def licence_of(corpus: Corpus) -> tuple[str, str]:
    """(licence, where it came from) of `corpus`: the terms its loader recorded, the kit's own for the synthetic
    language, else 'not recorded'."""
    base = getattr(corpus, "base", None)
    if isinstance(base, Corpus):
        return licence_of(base)
    if isinstance(corpus, SyntheticCorpus):
        return KIT_LICENCE, "cot-lab's own licence (pyproject.toml): its code generates the language"
    licence = getattr(corpus, "licence", None)
    if licence:
        return licence, getattr(corpus, "licence_source", None) or "recorded on the corpus"
    if kind_of(corpus) == "hub":
        return "not recorded", "read the dataset card on the Hugging Face hub"
    return "not recorded", "the corpus carries no licence attribute"


def sections(corpus: Corpus) -> dict[str, str]:
    """The seven sections (SECTIONS) as text for `corpus`, contamination and shift included."""
    base = getattr(corpus, "base", None)
    if isinstance(base, Corpus):
        text = sections(base)
        k, copies = len(corpus.planted), corpus.copies
        text["motivation"] = ("A deliberately contaminated copy of the corpus below, made to teach contamination "
                              "detection: the training stream holds copies of validation rows. " + text["motivation"])
        text["composition"] += (f" Contaminated (ContaminatedCorpus): {k} validation row(s) of {corpus.seq_len + 1} "
                                f"tokens, {copies} copies each, are planted at seeded positions (seed {corpus.seed}) "
                                f"among the first {corpus.horizon:,} training rows. The validation set is unchanged, "
                                "so planted rows taken from it (as usual) are in both splits.")
        text["uses"] = ("Only for the contamination and deduplication lessons: never report its validation loss "
                        "as held-out, since the planted rows were trained on. " + text["uses"])
        return text
    kind = kind_of(corpus)
    if isinstance(corpus, SyntheticCorpus):
        return _synthetic(corpus)
    if kind in ("python-docs", "python-code"):
        return _cpython(corpus, kind)
    if kind in ("local", "hub"):
        return _user_text(corpus, kind)
    return {s: NOT_RECORDED for s in SECTIONS}


def _synthetic(corpus: SyntheticCorpus) -> dict[str, str]:
    shift = corpus.shift
    motivation = ("Made for the cot-lab course kit so that training experiments have a known answer: a generated "
                  "language whose exact entropy floor (the loss no model can beat) is computable, so every model's "
                  "excess loss above it can be measured, offline and at any scale of data.")
    if shift:
        motivation += (" This is a controlled distribution shift of that language (same words, topics and tables, "
                       "other proportions), with an exact floor of its own, for measuring what a shift costs.")
    n_rows = max(2, -(-ENTROPY_TOKENS // corpus.DEFAULT_SEQ_LEN))
    return {
        "motivation": motivation,
        "composition": (
            "Rows of token ids of a generated language, no person's text: no personal or sensitive data. A row holds "
            "seq_len + 1 ids, starts at a document's <doc> token and continues with whole documents, the last cut "
            "off; there are no labels (each document's hidden topic is known to the generator only). "
            + " ".join(corpus.describe().split())),
        "collection": (
            f"Not collected: sampled on demand by the generator (cot_lab/data/synthetic_*.py) from tables fixed by "
            f"language_seed={corpus.language_seed}, in chunks of about 2^19 tokens from numpy SeedSequence streams "
            "keyed by (language_seed, seed, split, chunk). Training and validation rows come from different streams, "
            "so the same training seed gives the same rows whatever the batch size, and validation rows are never "
            f"training rows except by chance. The validation set is the first rows of the validation stream; the "
            f"floor is scored on its first {n_rows:,} rows of {corpus.DEFAULT_SEQ_LEN + 1} tokens."),
        "preprocessing": (
            "None: the generator emits token ids directly, with no tokenizer, filtering or deduplication (a duplicate "
            "is a chance coincidence, measured in the facts). The generator knows p(token | earlier tokens of the "
            "row) exactly, so the entropy floor is the mean exact -log p over "
            f"{n_rows * corpus.DEFAULT_SEQ_LEN:,} validation tokens, with its standard error."),
        "uses": (
            "Compute-optimal training in the course notebooks: scaling-law fits against a known floor, learning-rate "
            "and batch-size sweeps, pruning and quantization, dense against mixture-of-experts, and the evaluation "
            "lessons (contamination, deduplication, membership inference, distribution shift). Not for claims "
            "about natural language: it has 512 ids and is fully specified, so results carry over in shape, not in "
            "numbers."),
        "distribution": (
            f"Licence {KIT_LICENCE}: the generator is cot-lab code under the package's MIT licence. Nothing is "
            "downloaded or shipped but the code: rows are generated on the user's machine."),
        "maintenance": (
            "Maintained with cot-lab. The fingerprint hashes the language's version, parameters and every table, "
            "so any change makes a new corpus and stored runs keyed on the old one are never mixed with it; a "
            "changed language is a new version (version=2, 3), never an edit of an old one."),
    }


def _cpython(corpus: TextCorpus, kind: str) -> dict[str, str]:
    version = f"CPython {platform.python_version()}"
    common = (f"Each document is encoded with a byte-level BPE tokenizer of {corpus.vocab_size} ids (id 0 is "
              f"<|endoftext|>, appended to every document), trained on the first ~{SAMPLE_CHARS / 1e6:g} M "
              "characters of training documents (it never sees a validation document of the hash rule); blank "
              f"documents are dropped. Split by document: sha256(text) % {VAL_EVERY} == 0 goes to validation "
              f"(about {1 / VAL_EVERY:.0%}), topped up in hash order to at least {MIN_VAL_FRACTION:.0%} of the "
              "tokens, so identical documents always land on the same side. No deduplication and no filtering "
              "beyond the skipped folders: near-duplicates and overlap are measured in the facts.")
    if kind == "python-docs":
        what = ("English technical prose shipped with every Python install: every pydoc help topic "
                "(pydoc_data.topics, one document per topic, named topic:<key>) and, per .py file of the standard "
                "library, its module, class and function docstrings joined (docstrings:<path>; files without "
                "docstrings give none).")
        read = ("pydoc_data/topics.py (a plain dict literal, imported) and the standard library's .py files, read "
                "by parsing them with ast, never by importing them; test, tests, idle_test, site-packages, "
                "dist-packages, __pycache__, lib-dynload and config-* folders are skipped.")
        use = ("Real-text training offline (no download, no terms beyond CPython's), with python-code as an "
               "out-of-distribution test. Not for a general English model: it is narrow technical prose of one "
               "CPython version, with many near-identical docstrings (codecs, generated modules).")
    else:
        what = ("Python source code: every .py file of the standard library, one document per file, named by its "
                "path, decoded as UTF-8 (undecodable bytes replaced).")
        read = ("the standard library's .py files read as bytes, never imported; tests, idlelib, lib2to3, "
                "turtledemo, ensurepip, encodings (codec tables), pydoc_data, site-packages, lib-dynload, "
                "config-* folders and _sysconfigdata* files are skipped, to keep to hand-written library source.")
        use = ("Real code for training and for out-of-distribution evaluation of python-docs models. Not for a "
               "general code model: one language, one project's style, one CPython version.")
    return {
        "motivation": ("Real text that every Python install already holds, so the course can train on real data "
                       "offline, with terms that are known (CPython's) and no download."),
        "composition": (what + " Written by CPython's contributors; it may hold their names and e-mail addresses "
                        "(in docstrings, headers and comments) and has not been reviewed for personal data."),
        "collection": (f"Read from this machine's {version} install: {read} The source hash covers every file read, "
                       "so another CPython version (or edited files) gives another fingerprint."),
        "preprocessing": common,
        "uses": use,
        "distribution": (f"Licence {CPYTHON_LICENCE}: {CPYTHON_TERMS} cot-lab ships none of the text: every machine "
                         "builds the corpus from its own CPython and caches it under COT_LAB_HOME/corpora."),
        "maintenance": (f"Follows CPython: a new Python version is a new corpus with a new fingerprint. The build is "
                        f"version {BUILD_VERSION} (bumped, with the fingerprint, whenever documents, split or encoding "
                        "change)."),
    }


def _user_text(corpus: TextCorpus, kind: str) -> dict[str, str]:
    licence, source = licence_of(corpus)
    if kind == "hub":
        where = (f"Streamed from the Hugging Face hub dataset {corpus.name[3:]!r} (its first max_chars characters, "
                 "each row a document) and cached under COT_LAB_HOME/corpora.")
        how = NOT_RECORDED + " The dataset card on the hub may say who made it and how."
    else:
        exts = " ".join(sorted(TEXT_EXTENSIONS))
        where = (f"Read from {corpus.name!r} on this machine: each text file ({exts}) one document, the folder "
                 "walked recursively; hidden files and folders, __pycache__, node_modules and licence files "
                 "(LICENSE*, LICENCE*, COPYING*) are skipped.")
        how = "How the files were gathered is the user's to record. " + NOT_RECORDED
    split = (f"one document only, so it is split by position: the last {CHUNK_VAL_FRACTION:.0%} of its tokens are "
             "validation" if corpus.split == "chunk" else
             f"split by document: sha256(text) % {VAL_EVERY} == 0 goes to validation, topped up in hash order to at "
             f"least {MIN_VAL_FRACTION:.0%} of the tokens")
    return {
        "motivation": "Text the user chose for their own experiments. " + NOT_RECORDED,
        "composition": where + " What the text is about and whether it holds personal data: " + NOT_RECORDED,
        "collection": how,
        "preprocessing": (f"Byte-level BPE of {corpus.vocab_size} ids trained on the first ~{SAMPLE_CHARS / 1e6:g} M "
                          f"characters of training text, <|endoftext|> after each document, blank documents dropped; "
                          f"{split}. No deduplication: near-duplicates are measured in the facts."),
        "uses": "The user's experiments with cot-lab. " + NOT_RECORDED,
        "distribution": f"Licence {licence} ({source}). cot-lab keeps the built corpus only in COT_LAB_HOME/corpora.",
        "maintenance": ("The fingerprint hashes every file's relative name and bytes: any edited, added or removed "
                        "file makes a new corpus. Who maintains the text: " + NOT_RECORDED),
    }
