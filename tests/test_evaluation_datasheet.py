"""Datasheets (Gebru et al. 2018) for every corpus: the shipped ones, checked against a regeneration, and real
measurements on corpora with planted duplicates and contamination; local text must declare its licence."""
from __future__ import annotations

import hashlib
import json
import platform
import shutil

import numpy as np
import pytest

import cot_lab as cl
from cot_lab.evaluation.contaminated import ContaminatedCorpus
from cot_lab.evaluation.datasheet import (CITATION, SHIPPED, SHIPPED_DIR, Datasheet, datasheet, file_stem,
                                          shipped_datasheet)
from cot_lab.evaluation.datasheet_text import HEADINGS, SECTIONS
from cot_lab.evaluation.overlap import ngram_overlap

GEBRU = ("Motivation", "Composition", "Collection process", "Preprocessing, cleaning and labelling", "Uses",
         "Distribution", "Maintenance")
MANIFEST = json.loads((SHIPPED_DIR / "manifest.json").read_text())


@pytest.fixture(scope="module")
def v3():
    return cl.load_corpus("synthetic-v3")


@pytest.fixture(scope="module")
def topics() -> list[str]:
    from pydoc_data.topics import topics

    return [topics[k] for k in sorted(topics)][:30]


def test_every_built_in_corpus_has_a_shipped_datasheet_with_every_gebru_section():
    assert sorted(MANIFEST["corpora"]) == sorted(SHIPPED)
    assert sorted(MANIFEST["files"]) == sorted(f"{file_stem(n)}{s}" for n in SHIPPED for s in (".json", ".md"))
    assert sorted(p.name for p in SHIPPED_DIR.iterdir()) == sorted([*MANIFEST["files"], "manifest.json"])
    assert "synthetic-v3_rare-topics.md" in MANIFEST["files"]  # no ':' in file names
    assert [HEADINGS[s] for s in SECTIONS] == list(GEBRU)
    for name in SHIPPED:
        sheet = shipped_datasheet(name)  # sha256 of the .json and the .md checked against the manifest
        assert sheet.name == name and sheet.fingerprint
        md = (SHIPPED_DIR / f"{file_stem(name)}.md").read_text()
        assert md == sheet.to_markdown() and md.startswith(f"# Datasheet: {name}\n") and CITATION in md
        assert [line[3:] for line in md.splitlines() if line.startswith("## ")] == list(GEBRU)
        assert all(len(getattr(sheet, s)) > 80 for s in SECTIONS)
        for fact in ("licence", "training tokens", "near-duplicate rate", "train/validation 13-gram overlap",
                     "planted contamination"):
            assert f"| {fact}" in md
        assert sheet.contamination is None and "| planted contamination | none planted |" in md
        if name.startswith("python-"):
            assert sheet.licence == "PSF-2.0" and "docs.python.org/3/license.html" in sheet.licence_source
            assert "PSF License Agreement" in sheet.distribution and "PSF-2.0" in md
            assert sheet.train_tokens > 1_000_000 and sheet.entropy_floor is None
        else:
            assert sheet.licence == "MIT" and sheet.train_tokens is None and sheet.documents is None
            assert sheet.val_tokens == 4096 * 128 and 2.5 < sheet.entropy_floor < 3.5  # the floor's 2^19 tokens
            assert "unlimited, seeded stream" in md


def test_the_shipped_synthetic_datasheets_equal_a_regeneration_now(v3):
    for corpus in (v3, cl.load_corpus("synthetic-v3:rare-topics")):
        now, shipped = datasheet(corpus), shipped_datasheet(corpus.name)
        assert (now.fingerprint, now.entropy_floor, now.duplicate_rate) == (
            shipped.fingerprint, shipped.entropy_floor, shipped.duplicate_rate)
        assert now.to_record() == shipped.to_record()
    assert shipped.source.endswith("shift 'rare-topics'") and "rare-topics" in shipped.composition
    # Measured: rows of the generated language never near-duplicate, and no validation row shares a 13-gram.
    assert now.duplicate_rate == 0.0 and now.val_flagged == 0 and now.sample_size == 1000


def test_the_shipped_python_docs_datasheet_equals_a_regeneration_now():
    sheet = shipped_datasheet("python-docs")
    if MANIFEST["python"] != platform.python_version():
        pytest.skip(f"shipped from CPython {MANIFEST['python']}; this is {platform.python_version()}: another corpus")
    docs = cl.load_corpus("python-docs")  # ~10 s to build in this session's COT_LAB_HOME
    assert (sheet.fingerprint, sheet.train_tokens, sheet.val_tokens) == (docs.fingerprint, docs.train_tokens,
                                                                           docs.val_tokens)
    assert (sheet.documents, sheet.val_documents) == (docs.n_documents, len(docs.val_documents))
    assert datasheet(docs).to_record() == sheet.to_record()
    # Measured on the whole training split (685 documents, under the sample size): the stdlib's codec modules'
    # docstrings are near-copies of each other, and some validation docstrings repeat a training 13-gram.
    assert sheet.sample_size == docs.n_documents - len(docs.val_documents) and 0 < sheet.duplicate_rate < 0.05
    assert 0 < sheet.val_flagged < sheet.val_checked == len(docs.val_documents)


def test_a_changed_shipped_file_is_refused(tmp_path):
    folder = tmp_path / "datasheets"
    shutil.copytree(SHIPPED_DIR, folder)
    assert shipped_datasheet("synthetic", root=folder).name == "synthetic"
    md = folder / "synthetic.md"
    md.write_text(md.read_text().replace("none planted", "nothing to see"))
    with pytest.raises(ValueError, match=r"synthetic\.md does not match its manifest's sha256.*datasheet write"):
        shipped_datasheet("synthetic", root=folder)
    record = folder / "synthetic-v3.json"
    record.write_text(record.read_text().replace('"MIT"', '"CC0-1.0"'))
    with pytest.raises(ValueError, match=r"synthetic-v3\.json does not match"):
        shipped_datasheet("synthetic-v3", root=folder)
    with pytest.raises(ValueError, match=r"name='wikipedia' has no shipped datasheet.*python-docs"):
        shipped_datasheet("wikipedia", root=folder)
    with pytest.raises(FileNotFoundError, match="datasheet write"):
        shipped_datasheet("synthetic", root=tmp_path / "none")


def test_a_contaminated_corpus_reports_its_plants_and_more_duplicates_than_the_clean_one(v3):
    planted = v3.val_batch(64, 128)[:4]
    dirty = ContaminatedCorpus(v3, planted, copies=20, seed=3, horizon=1000)
    sheet, clean = datasheet(dirty), datasheet(v3)
    c = sheet.contamination
    assert (c["planted_rows"], c["copies"], c["plants"], c["row_tokens"], c["horizon"]) == (4, 20, 80, 129, 1000)
    assert (c["first_position"], c["last_position"]) == (int(dirty.plants.positions.min()),
                                                          int(dirty.plants.positions.max()))
    assert c["plants_in_sample"] == 80  # the sample is the stream's first 1000 rows: the whole horizon
    md = sheet.to_markdown()
    assert "4 validation row(s) of 129 tokens x 20 copies = 80 plants" in md and "Contaminated" in sheet.composition
    # Each planted row's 20 exact copies form one cluster and 19 of them go: 76 of the 1000 rows; the clean stream
    # has none. The leak check flags exactly the 4 planted validation rows, as ngram_overlap does.
    assert clean.duplicate_rate == 0.0 and sheet.duplicate_rate == 76 / 1000 and sheet.duplicate_clusters == 4
    assert (clean.val_flagged, sheet.val_flagged) == (0, 4)
    rows, val = next(dirty.train_batches(1000, 128, 0)), dirty.val_batch(1000, 128)
    assert np.flatnonzero(ngram_overlap(rows, val).flagged).tolist() == [0, 1, 2, 3]
    # The floor and the kind are the base's; the fingerprint is the contaminated stream's own.
    assert (sheet.kind, sheet.entropy_floor) == ("synthetic-v3", clean.entropy_floor)
    assert sheet.fingerprint == dirty.fingerprint != clean.fingerprint
    assert datasheet(ContaminatedCorpus(v3, planted, copies=0)).contamination is None


def _folder(root, topics, licence_file: str | None = None):
    root.mkdir()
    for i, t in enumerate(topics):
        (root / f"doc{i:02d}.md").write_text(t)
    if licence_file is not None:
        (root / "LICENSE").write_text(licence_file)
    return root


def _hash(text: str) -> int:  # text_build's split rule: sha256(text) % 20 == 0 goes to validation
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def test_local_text_records_its_licence_and_its_duplicates(tmp_path, topics):
    clean = cl.load_corpus(_folder(tmp_path / "clean", topics), vocab_size=300, licence="CC-BY-4.0")
    sheet = datasheet(clean)
    assert (sheet.kind, sheet.licence, sheet.licence_source) == ("local", "CC-BY-4.0", "argument")
    assert "Licence CC-BY-4.0 (argument)" in sheet.distribution and "| licence | CC-BY-4.0 (argument) |" in sheet.to_markdown()
    assert sheet.train_tokens == clean.train_tokens and sheet.documents == len(topics) == clean.n_documents
    assert sheet.duplicate_rate == 0.0 and sheet.sample_unit.startswith("training documents")
    # Three exact copies of a training document (the hash rule's last training document: a top-up of the
    # validation split, in hash order, reaches it last) are found: 3 of the sampled documents go.
    copied = max((t for t in topics if _hash(t) % 20), key=_hash)
    dup = _folder(tmp_path / "dup", topics + [copied] * 3, licence_file="MIT License\n\nPermission is hereby "
                                                                         "granted, free of charge, to any person")
    dirty = cl.load_corpus(dup, vocab_size=300)
    assert not {f"doc{i:02d}.md" for i, t in enumerate(topics + [copied] * 3) if t == copied} & set(dirty.val_documents)
    sheet = datasheet(dirty)
    assert (sheet.licence, sheet.licence_source) == ("MIT", "file:LICENSE")
    assert sheet.sample_size == dirty.n_documents - len(dirty.val_documents)
    assert sheet.duplicate_rate == 3 / sheet.sample_size and sheet.duplicate_clusters == 1


def test_local_text_without_a_licence_is_refused(tmp_path, topics):
    folder = _folder(tmp_path / "unlicensed", topics[:5])
    with pytest.raises(ValueError, match=r"no licence information.*licence=\"CC-BY-4.0\".*LICENSE file"):
        cl.load_corpus(folder)


def test_a_one_file_corpus_is_sampled_as_windows(tmp_path, topics):
    path = tmp_path / "book.txt"
    path.write_text("\n\n".join(topics))
    sheet = datasheet(cl.load_corpus(path, vocab_size=300, licence="proprietary, own use"), sample_documents=5)
    assert sheet.licence == "proprietary, own use" and sheet.documents == 1
    assert sheet.sample_unit.startswith("training windows of 1024 tokens") and sheet.sample_size == 5


def test_records_round_trip_and_bad_input_is_refused(v3):
    sheet = datasheet(v3, sample_documents=10)
    assert sheet.sample_size == 10 and sheet.sample_tokens == 10 * 129
    record = json.loads(json.dumps(sheet.to_record()))
    assert record["citation"] == CITATION and set(SECTIONS) <= set(record)
    assert Datasheet.from_record(record) == sheet
    with pytest.raises(ValueError, match="record must be a datasheet record of format 1"):
        Datasheet.from_record({**record, "format": 0})
    with pytest.raises(ValueError, match=r"record lacks the datasheet fields \['licence'\]"):
        Datasheet.from_record({k: v for k, v in record.items() if k != "licence"})
    with pytest.raises(ValueError, match=r"corpus='synthetic-v3' is not a Corpus"):
        datasheet("synthetic-v3")
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=rf"sample_documents={bad!r} must be"):
            datasheet(v3, sample_documents=bad)
