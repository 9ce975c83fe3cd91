"""Datasheets for the corpora (Gebru et al. 2018), with measured facts, and the shipped ones in cot_lab/data/datasheets.

Gebru et al. 2018, "Datasheets for Datasets" (arXiv 1803.09010): every dataset should come with answers on its
motivation, composition, collection process, preprocessing/cleaning/labelling, uses, distribution and
maintenance. `datasheet(corpus)` writes those sections (from `datasheet_text`, per kind of corpus) and measures
the facts a reader needs to trust them:

  tokens and documents  train and validation token counts (text), or an unlimited seeded stream (synthetic)
                        and the validation tokens behind its exact entropy floor
  near-duplicate rate   MinHash LSH as FineWeb (`dedup`: 5-gram shingles, 14 bands x 8 rows, threshold 0.72)
                        over a seeded sample of training documents, or the first rows of a training stream
  train/val overlap     GPT-3's 13-gram rule (Brown et al. 2020, App. C; `ngram_overlap`): validation documents
                        sharing any 13-gram with that training sample (the leak check)
  planted contamination a ContaminatedCorpus's planted rows, copies and positions; else none planted

`python -m cot_lab.evaluation.datasheet write [--out DIR]` writes <name>.md and <name>.json for the built-in
corpora plus manifest.json (sha256 of each file); `shipped_datasheet(name)` reads one back, checked.
"""
from __future__ import annotations

import dataclasses
import platform
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cot_lab.core import validate
from cot_lab.core.io import write_json, write_text
from cot_lab.core.results import sha256_file, verified_json
from cot_lab.data.base import Corpus
from cot_lab.data.synthetic import ENTROPY_TOKENS, SyntheticCorpus
from cot_lab.data.text import TextCorpus
from cot_lab.data.tokenizer import eot_id
from cot_lab.evaluation.datasheet_text import HEADINGS, SECTIONS, kind_of, licence_of, sections
from cot_lab.evaluation.dedup import FINEWEB_BANDS, FINEWEB_ROWS, FINEWEB_THRESHOLD, SHINGLE_N, dedup
from cot_lab.evaluation.documents import as_tokens, ngrams
from cot_lab.evaluation.overlap import GPT3_N

CITATION = 'Gebru et al. 2018, "Datasheets for Datasets", arXiv 1803.09010'
FORMAT = 1                  # bump when the record's fields change
SAMPLE_DOCUMENTS = 1000     # training documents (or rows) deduplicated and checked for overlap
SAMPLE_SEED = 0             # the seed of the document sample, and the training stream's seed for rows
SAMPLE_TOKEN_CAP = 4_000_000  # MinHash of 4 M tokens holds ~0.6 GB of shingles: a larger sample stops here
ROW_SEQ_LEN = SyntheticCorpus.DEFAULT_SEQ_LEN  # rows of 129 tokens, as the floor is scored at
WINDOW_TOKENS = 1024        # a one-document (chunk-split) corpus is sampled as windows of this many tokens
SHIPPED = ("synthetic", "synthetic-v3", "synthetic-v3:rare-topics", "synthetic-v3:common-topics",
           "synthetic-v3:deep-nesting", "python-docs", "python-code")
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "data" / "datasheets"
WRITE = "python -m cot_lab.evaluation.datasheet write"


@dataclass(frozen=True)
class Datasheet:
    """A corpus's datasheet: Gebru et al.'s seven sections as text, and facts measured on the corpus.

    Token counts are in tokens of the corpus's own ids; rates and shares are fractions in [0, 1]; the floor is
    in nats/token. None means "not applicable": an unlimited stream has no train_tokens, real text no floor.
    """
    name: str
    kind: str                       # 'synthetic', 'synthetic-v3', 'python-docs', 'python-code', 'local', 'hub', 'other'
    fingerprint: str
    motivation: str
    composition: str
    collection: str
    preprocessing: str
    uses: str
    distribution: str
    maintenance: str
    licence: str                    # SPDX identifier or words ('proprietary, own use'); 'not recorded' if unknown
    licence_source: str             # 'argument', 'file:LICENSE', CPython's licence page, the kit's licence...
    source: str                     # what it was made from: 'CPython 3.12.3', 'language version 3, seed 0', a path
    vocab_size: int
    train_tokens: int | None        # None: an unlimited, seeded stream
    val_tokens: int | None          # text: the validation split; synthetic: the tokens behind the entropy floor
    documents: int | None           # documents in the corpus (None: unlimited)
    val_documents: int | None
    entropy_floor: float | None     # nats/token at floor_seq_len; None where no floor is known
    entropy_floor_se: float | None
    floor_seq_len: int | None
    sample_unit: str                # what was sampled: 'training documents', 'training rows of 129 tokens', ...
    sample_size: int                # how many of them
    sample_tokens: int              # tokens of the sampled units (end-of-text tokens not counted)
    sample_seed: int
    duplicate_rate: float           # share of the sample MinHash LSH removes as near-duplicates
    duplicate_clusters: int
    overlap_n: int                  # 13: GPT-3's n-gram length
    val_checked: int                # validation documents (or rows) checked against the training sample
    val_flagged: int                # of them, how many share at least one 13-gram with it
    val_ngram_share: float          # share of the checked validation 13-grams found in the training sample
    contamination: dict | None      # planted rows, copies, row tokens, positions range; None: none planted

    @property
    def val_flagged_share(self) -> float:
        """Share of the checked validation documents (or rows) that share a 13-gram with the training sample."""
        return self.val_flagged / self.val_checked if self.val_checked else float("nan")

    def facts(self) -> list[tuple[str, str]]:
        """(fact, value) pairs, worded for people: the table of `to_markdown`."""
        floor = ("none known (real text)" if self.entropy_floor is None else
                 f"{self.entropy_floor:.4f} ± {self.entropy_floor_se:.4f} nats/token at seq_len {self.floor_seq_len}")
        c = self.contamination
        planted = "none planted" if c is None else (
            f"{c['planted_rows']} validation row(s) of {c['row_tokens']} tokens x {c['copies']} copies = "
            f"{c['plants']} plants at training rows {c['first_position']}..{c['last_position']} of the first "
            f"{c['horizon']:,} (seed {c['seed']}); {c['plants_in_sample']} in the sample")
        return [
            ("kind", self.kind), ("fingerprint", f"`{self.fingerprint}`"), ("source", self.source),
            ("licence", f"{self.licence} ({self.licence_source})"), ("vocabulary", f"{self.vocab_size:,} token ids"),
            ("training tokens", "unlimited, seeded stream" if self.train_tokens is None else f"{self.train_tokens:,}"),
            ("validation tokens", "none" if self.val_tokens is None else f"{self.val_tokens:,}"
             + (" (behind the entropy floor)" if self.train_tokens is None else "")),
            ("documents", "unlimited" if self.documents is None else f"{self.documents:,} ({self.val_documents:,} "
             "in validation)"),
            ("entropy floor", floor),
            ("near-duplicate rate", f"{self.duplicate_rate:.2%} of a sample of {self.sample_size:,} {self.sample_unit}"
             f" ({self.sample_tokens:,} tokens, seed {self.sample_seed}): {self.duplicate_clusters} cluster(s); "
             f"MinHash LSH, {SHINGLE_N}-gram shingles, {FINEWEB_BANDS} bands x {FINEWEB_ROWS} rows "
             f"(FineWeb, threshold {FINEWEB_THRESHOLD})"),
            ("train/validation 13-gram overlap", f"{self.val_flagged:,} of {self.val_checked:,} validation "
             f"{self.sample_unit.split(',')[0].split()[1]} ({self.val_flagged_share:.2%}) share a {self.overlap_n}-gram "
             f"with the training sample; {self.val_ngram_share:.2%} of their {self.overlap_n}-grams (GPT-3's rule)"),
            ("planted contamination", planted),
        ]

    def to_markdown(self) -> str:
        """The datasheet as Markdown: a title, the facts as a table, then one heading per Gebru section."""
        cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731 - one line per table cell
        lines = [f"# Datasheet: {self.name}", "",
                 f"After {CITATION}. Facts measured by `cot_lab.evaluation.datasheet`.", "",
                 "| fact | value |", "|---|---|"]
        lines += [f"| {cell(k)} | {cell(v)} |" for k, v in self.facts()]
        for section in SECTIONS:
            lines += ["", f"## {HEADINGS[section]}", "", getattr(self, section)]
        return "\n".join(lines) + "\n"

    def _repr_markdown_(self) -> str:  # Jupyter shows a datasheet as its Markdown
        return self.to_markdown()

    def to_record(self) -> dict:
        """A JSON-able dict of every field, with the format version and the citation."""
        return {"format": FORMAT, "citation": CITATION, **dataclasses.asdict(self)}

    @classmethod
    def from_record(cls, record: dict) -> "Datasheet":
        """The Datasheet of a `to_record` dict; ValueError naming what is missing or of another format."""
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"record must be a datasheet record of format {FORMAT} (Datasheet.to_record()); got "
                             f"{type(record).__name__} of format {record.get('format') if isinstance(record, dict) else None!r}")
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in record]
        if missing:
            raise ValueError(f"record lacks the datasheet fields {missing}; write it with Datasheet.to_record()")
        return cls(**{n: record[n] for n in names})


def datasheet(corpus: Corpus, *, sample_documents: int = SAMPLE_DOCUMENTS) -> Datasheet:
    """The datasheet of any Corpus: Gebru et al.'s sections for its kind, and facts measured on it now.

    sample_documents: training documents (text) or rows (a stream) to deduplicate and to check the validation
    set against, at most SAMPLE_TOKEN_CAP tokens; text samples are seeded (SAMPLE_SEED), stream samples are the
    first rows of the seed-0 training stream. The same number of validation documents or rows is checked.
    """
    if not isinstance(corpus, Corpus):
        raise ValueError(f"corpus={corpus!r} is not a Corpus; pass one, e.g. cl.load_corpus('synthetic-v3')")
    sample_documents = validate.integer("sample_documents", sample_documents, low=1,
                                        hint=f"training documents to sample, e.g. {SAMPLE_DOCUMENTS}")
    base = corpus.base if isinstance(getattr(corpus, "base", None), Corpus) else corpus
    counts = _counts(base)
    train, val, sample_tokens, unit = _samples(corpus, sample_documents)
    found = dedup(train)
    flagged, checked, share = _leak(train, val)
    seq_len = getattr(corpus, "seq_len", ROW_SEQ_LEN)
    floor, floor_se = corpus.entropy_for(seq_len) if isinstance(base, SyntheticCorpus) else (None, None)
    licence, licence_source = licence_of(corpus)
    return Datasheet(
        name=corpus.name, kind=kind_of(corpus), fingerprint=corpus.fingerprint, **sections(corpus),
        licence=licence, licence_source=licence_source, source=_source(base), vocab_size=int(corpus.vocab_size),
        **counts, entropy_floor=floor, entropy_floor_se=floor_se, floor_seq_len=seq_len if floor is not None else None,
        sample_unit=unit, sample_size=len(train), sample_tokens=sample_tokens,
        sample_seed=SAMPLE_SEED, duplicate_rate=float(found.duplicate_rate), duplicate_clusters=len(found.clusters),
        overlap_n=GPT3_N, val_checked=checked, val_flagged=flagged, val_ngram_share=share,
        contamination=_contamination(corpus, len(train)))


def _counts(corpus: Corpus) -> dict:
    if isinstance(corpus, TextCorpus):
        return dict(train_tokens=corpus.train_tokens, val_tokens=corpus.val_tokens, documents=corpus.n_documents,
                    val_documents=len(corpus.val_documents))
    if isinstance(corpus, SyntheticCorpus):  # the floor's rows: ceil(2^19 / seq_len) rows of seq_len scored tokens
        rows = max(2, -(-ENTROPY_TOKENS // ROW_SEQ_LEN))
        return dict(train_tokens=None, val_tokens=rows * ROW_SEQ_LEN, documents=None, val_documents=None)
    return dict(train_tokens=None, val_tokens=None, documents=None, val_documents=None)


def _source(corpus: Corpus) -> str:
    if isinstance(corpus, SyntheticCorpus):
        shift = f", shift {corpus.shift.label!r}" if corpus.shift else ""
        return f"synthetic language version {corpus.version}, language_seed {corpus.language_seed}{shift}"
    if kind_of(corpus) in ("python-docs", "python-code"):
        return f"CPython {platform.python_version()} standard library"
    return corpus.name


def _samples(corpus: Corpus, size: int) -> tuple[list, list, int, str]:
    """(training sample, validation units to check, tokens in the sample, what a unit is).

    Text corpora give whole documents decoded to text, compared as whitespace words, the unit FineWeb's shingles
    and GPT-3's 13-grams count in (a 512-id BPE token is a piece of a word: 13 tokens are about 3 words, and
    unrelated prose would share them); a stream gives rows of token ids, which for the synthetic language are words.
    """
    if isinstance(corpus, TextCorpus):
        eot = eot_id(corpus.tokenizer)
        if corpus.split == "chunk":  # one document: windows of it are the only units there are
            train, val = _windows(np.asarray(corpus.train)), _windows(np.asarray(corpus.val))
            unit = f"training windows of {WINDOW_TOKENS} tokens, compared as whitespace words"
        else:
            train, val = _documents(np.asarray(corpus.train), eot), _documents(np.asarray(corpus.val), eot)
            unit = "training documents, compared as whitespace words"
        order = np.random.default_rng(SAMPLE_SEED).permutation(len(train))
        train = [train[i] for i in sorted(_capped(order, [len(d) for d in train], size))]
        text = lambda docs: corpus.tokenizer.decode_batch([d.tolist() for d in docs], skip_special_tokens=False)  # noqa: E731
        return text(train), text(val[:size]), int(sum(len(d) for d in train)), unit
    seq_len = getattr(corpus, "seq_len", ROW_SEQ_LEN)  # a ContaminatedCorpus trains only at its rows' length
    size = min(size, max(1, SAMPLE_TOKEN_CAP // (seq_len + 1)))
    train = next(corpus.train_batches(size, seq_len, SAMPLE_SEED)).numpy()
    val = corpus.val_batch(size, seq_len).numpy()
    return list(train), list(val), int(train.size), f"training rows of {seq_len + 1} tokens"


def _documents(tokens: np.ndarray, eot: int) -> list[np.ndarray]:
    """The documents of a split: the runs between end-of-text tokens (which every document ends with)."""
    ends = np.flatnonzero(tokens == eot)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [tokens[a:b] for a, b in zip(starts, ends) if b > a]


def _windows(tokens: np.ndarray) -> list[np.ndarray]:
    return [tokens[a:a + WINDOW_TOKENS] for a in range(0, len(tokens), WINDOW_TOKENS)]


def _capped(order: np.ndarray, lengths: list[int], size: int) -> list[int]:
    """The first `size` of `order` whose lengths fit SAMPLE_TOKEN_CAP in all (always at least one)."""
    chosen, total = [], 0
    for i in order:
        if len(chosen) == size or (chosen and total + lengths[i] > SAMPLE_TOKEN_CAP):
            break
        chosen.append(int(i))
        total += lengths[i]
    return chosen


def _leak(train: list, val: list) -> tuple[int, int, float]:
    """(validation units with a 13-gram in the training sample, units checked, share of their 13-grams found).

    GPT-3's rule as in `ngram_overlap`, but the validation n-grams are the ones held in a set and the training
    sample streams past them: memory stays that of the validation set, not of millions of training 13-grams.
    """
    val_grams = [ngrams(as_tokens("val", d)[0], GPT3_N) for d in val]
    wanted = {g for grams in val_grams for g in grams}
    seen: set = set()
    for doc in train:
        seen.update(wanted.intersection(ngrams(as_tokens("train", doc)[0], GPT3_N)))
    matched = [sum(g in seen for g in grams) for grams in val_grams]
    total = sum(len(grams) for grams in val_grams)
    return sum(m > 0 for m in matched), len(val), (sum(matched) / total if total else 0.0)


def _contamination(corpus: Corpus, sample_rows: int) -> dict | None:
    plants = getattr(corpus, "plants", None)
    if plants is None or not getattr(corpus, "copies", 0):
        return None
    positions = np.asarray(plants.positions)
    return dict(planted_rows=int(positions.shape[0]), copies=int(plants.copies), plants=int(positions.size),
                row_tokens=int(corpus.seq_len + 1), first_position=int(positions.min()),
                last_position=int(positions.max()), horizon=int(corpus.horizon), seed=int(plants.seed),
                plants_in_sample=int((positions < sample_rows).sum()))


# ---------------------------------------------------------------- shipped datasheets
def file_stem(name: str) -> str:
    """The file name (no suffix) of a corpus's datasheet: its name with ':' as '_' ('synthetic-v3_rare-topics')."""
    return name.replace(":", "_")


def write_datasheets(out: str | Path | None = None, names=SHIPPED) -> Path:
    """Write <stem>.md and <stem>.json for each corpus name, and manifest.json with their sha256; returns the folder."""
    from cot_lab.data import load_corpus

    folder = Path(out) if out is not None else SHIPPED_DIR
    files = {}
    for name in names:
        sheet = datasheet(load_corpus(name))
        write_json(folder / f"{file_stem(name)}.json", sheet.to_record())  # atomic, keys sorted: stable bytes
        write_text(folder / f"{file_stem(name)}.md", sheet.to_markdown())
        files.update({f"{file_stem(name)}{s}": sha256_file(folder / f"{file_stem(name)}{s}") for s in (".json", ".md")})
        print(f"{name}: duplicate rate {sheet.duplicate_rate:.2%} of {sheet.sample_size} {sheet.sample_unit}, "
              f"{sheet.val_flagged}/{sheet.val_checked} validation units share a 13-gram with training")
    write_json(folder / "manifest.json", dict(format=FORMAT, citation=CITATION, python=platform.python_version(),
                                              corpora={n: file_stem(n) for n in names}, files=files))
    return folder


def shipped_datasheet(name: str, root: str | Path | None = None) -> Datasheet:
    """The datasheet shipped for corpus `name` ('synthetic-v3', 'synthetic-v3:rare-topics', 'python-docs'...),
    its .json and .md checked against the sha256 in manifest.json; ValueError if either changed."""
    folder = Path(root) if root is not None else SHIPPED_DIR
    if not (folder / "manifest.json").is_file():
        raise FileNotFoundError(f"no shipped datasheets at {folder}; write them with `{WRITE}`")
    manifest, _ = verified_json(folder, [], WRITE)
    if not isinstance(name, str) or name not in manifest["corpora"]:
        raise ValueError(f"name={name!r} has no shipped datasheet; shipped: {sorted(manifest['corpora'])}")
    stem = manifest["corpora"][name]
    md = f"{stem}.md"
    if sha256_file(folder / md) != manifest["files"][md]:
        raise ValueError(f"{folder / md} does not match its manifest's sha256; reinstall cot-lab or rerun `{WRITE}`")
    _, (record,) = verified_json(folder, [f"{stem}.json"], WRITE)
    return Datasheet.from_record(record)


def main(argv=None) -> int:
    """`python -m cot_lab.evaluation.datasheet write [--out DIR]`: write the shipped datasheets."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m cot_lab.evaluation.datasheet")
    sub = parser.add_subparsers(dest="command", required=True)
    write = sub.add_parser("write", help="write the datasheets of the built-in corpora and their manifest")
    write.add_argument("--out", default=None, help=f"folder (default {SHIPPED_DIR})")
    args = parser.parse_args(argv)
    print(f"wrote {write_datasheets(args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
