"""Near-duplicate documents: MinHash LSH as FineWeb runs it, exact shingle Jaccard, and planted near-duplicates.

FineWeb (Penedo et al. 2024, "The FineWeb Datasets", arXiv 2406.17557, Sec. 3.3) deduplicates with MinHash on
word 5-gram shingles, 112 hash functions split into 14 bands (buckets) of 8 rows (hashes) each. Two documents
become a candidate pair when all 8 rows of any one band agree. A row agrees with probability s, the Jaccard
similarity of the two shingle sets, so a pair is caught with probability P(s) = 1 - (1 - s^8)^14: an S-curve
whose steep middle is near the usual threshold estimate (1/b)^(1/r) = (1/14)^(1/8) = 0.719 (P = 0.50 at
s = 0.684, 0.77 at 0.75, 0.92 at 0.8, 0.9996 at 0.9; 0.05 at 0.5). Candidate pairs are joined into clusters
(union-find) and one document of each cluster is kept, the first; no pair is re-checked against the threshold,
as in FineWeb. `datasketch` (MinHash, MinHashLSH) computes the signatures and the bands.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cot_lab.core import validate
from cot_lab.evaluation.documents import TEXT, as_documents, as_tokens, shingles

FINEWEB_BANDS, FINEWEB_ROWS = 14, 8     # Penedo et al. 2024, Sec. 3.3: 14 buckets of 8 hashes, 5-grams
FINEWEB_NUM_PERM = FINEWEB_BANDS * FINEWEB_ROWS   # 112 hash functions
FINEWEB_THRESHOLD = 0.72                # (1/14)^(1/8) = 0.719, rounded: the default keeps exactly 14 x 8
SHINGLE_N = 5                           # FineWeb's word 5-grams
MINHASH_SEED = 1                        # datasketch's default seed of the hash permutations


def candidate_probability(similarity, bands: int = FINEWEB_BANDS, rows: int = FINEWEB_ROWS):
    """P(a pair of Jaccard similarity s becomes an LSH candidate) = 1 - (1 - s^rows)^bands (a share in [0, 1])."""
    s = np.asarray(similarity, dtype=float)
    return 1.0 - (1.0 - s ** rows) ** bands


def bands_rows_for(threshold: float, num_perm: int = FINEWEB_NUM_PERM) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm whose (1/bands)^(1/rows) is nearest `threshold`; 0.72 -> (14, 8).

    The FineWeb default is kept exactly; another threshold gets the split whose S-curve midpoint estimate is
    nearest it (ties: more hashes used). datasketch's own optimiser (MinHashLSH(threshold=...)) minimises
    false-positive plus false-negative area instead, and gives (12, 9) for 0.72, not FineWeb's 14 x 8.
    """
    threshold = validate.number("threshold", threshold, low=0.0, high=1.0, hint="e.g. 0.72 (FineWeb's 14 x 8)")
    if threshold == FINEWEB_THRESHOLD and num_perm == FINEWEB_NUM_PERM:
        return FINEWEB_BANDS, FINEWEB_ROWS
    splits = [(b, r) for r in range(1, num_perm // 2 + 1) for b in range(2, num_perm // r + 1)]  # datasketch: b >= 2
    return min(splits, key=lambda br: (abs((1 / br[0]) ** (1 / br[1]) - threshold), -br[0] * br[1]))


def exact_jaccard(a, b, n: int = SHINGLE_N) -> float:
    """|A & B| / |A | B| of two documents' n-gram shingle sets (a share in [0, 1]; two empty documents: 1.0)."""
    n = validate.integer("n", n, hint=f"the shingle length, e.g. {SHINGLE_N} as in FineWeb")
    a_tokens, a_kind = as_tokens("a", a)
    b_tokens, b_kind = as_tokens("b", b)
    if a_tokens and b_tokens and a_kind != b_kind:
        raise ValueError(f"a holds {a_kind} but b holds {b_kind}; compare two strings or two token-id sequences")
    return _jaccard(shingles(a_tokens, n), shingles(b_tokens, n))


def _jaccard(a: set, b: set) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 1.0


@dataclass(frozen=True)
class Dedup:
    """What MinHash LSH found: candidate pairs with their estimated Jaccard, clusters, and the documents kept."""
    kept: np.ndarray                # int, ascending: the first document of each cluster and every singleton
    clusters: tuple[tuple[int, ...], ...]  # clusters of two or more documents, each ascending, by first member
    pairs: np.ndarray               # int [n_pairs, 2], first < second: candidate pairs (they shared a band)
    estimated_jaccard: np.ndarray   # float [n_pairs]: MinHash estimate (agreeing hashes / num_perm)
    n_documents: int
    bands: int
    rows: int
    num_perm: int                   # hash functions per signature (>= bands * rows; all estimate the Jaccard)
    n: int                          # shingle length, in words (text) or token ids

    @property
    def effective_threshold(self) -> float:
        """(1/bands)^(1/rows): the usual estimate of the similarity where the S-curve rises (0.719 for 14 x 8)."""
        return (1.0 / self.bands) ** (1.0 / self.rows)

    @property
    def removed(self) -> np.ndarray:
        """int, ascending: the documents deduplication drops (every cluster member but the first)."""
        return np.setdiff1d(np.arange(self.n_documents), self.kept)

    @property
    def duplicate_rate(self) -> float:
        """Share of the documents removed (in [0, 1))."""
        return len(self.removed) / self.n_documents

    def has_pair(self, first: int, second: int) -> bool:
        """True if the two documents (either order) were found as a candidate pair."""
        lo, hi = sorted((int(first), int(second)))
        return bool(np.any((self.pairs[:, 0] == lo) & (self.pairs[:, 1] == hi)))

    def frame(self):
        """A pandas DataFrame, one row per candidate pair: first, second, estimated_jaccard, cluster (index)."""
        import pandas as pd  # imported here: `import cot_lab` stays light

        cluster_of = {doc: k for k, members in enumerate(self.clusters) for doc in members}
        return pd.DataFrame({"first": self.pairs[:, 0], "second": self.pairs[:, 1],
                             "estimated_jaccard": self.estimated_jaccard,
                             "cluster": [cluster_of[int(i)] for i in self.pairs[:, 0]]})


def dedup(documents, threshold: float = FINEWEB_THRESHOLD, *, n: int = SHINGLE_N,
          bands_rows: tuple[int, int] | None = None, seed: int = MINHASH_SEED) -> Dedup:
    """Find near-duplicate documents with MinHash LSH (FineWeb's 5-gram shingles, 14 bands x 8 rows by default).

    Penedo et al. 2024 (arXiv 2406.17557), Sec. 3.3. `threshold` in (0, 1] picks bands x rows from 112 hash
    functions: the default 0.72 is FineWeb's 14 x 8 exactly ((1/14)^(1/8) = 0.719), another value the split
    whose (1/b)^(1/r) is nearest (`bands_rows_for`). `bands_rows=(b, r)` sets the split directly (then leave
    `threshold` at its default). Documents are strings (whitespace words) or sequences of token ids; `seed`
    fixes datasketch's hash permutations.
    """
    from datasketch import MinHash, MinHashLSH  # imported here: it pulls in scipy.integrate (~0.6 s)

    threshold = validate.number("threshold", threshold, low=0.0, high=1.0,
                                hint="a Jaccard similarity, e.g. 0.72 (FineWeb's 14 bands x 8 rows)")
    n = validate.integer("n", n, hint=f"the shingle length, e.g. {SHINGLE_N} as in FineWeb")
    seed = validate.integer("seed", seed, low=0, hint=f"e.g. {MINHASH_SEED} (datasketch's default)")
    if bands_rows is None:
        bands, rows = bands_rows_for(threshold)
        num_perm = FINEWEB_NUM_PERM
    else:
        if threshold != FINEWEB_THRESHOLD:
            raise ValueError(f"threshold={threshold!r} and bands_rows={bands_rows!r} both set the LSH bands; "
                             "pass one of them")
        if not isinstance(bands_rows, (tuple, list)) or len(bands_rows) != 2:
            raise ValueError(f"bands_rows={bands_rows!r} must be a pair (bands, rows), e.g. (14, 8) as in FineWeb")
        bands = validate.integer("bands_rows[0] (bands)", bands_rows[0], low=2, hint="e.g. 14 as in FineWeb")
        rows = validate.integer("bands_rows[1] (rows)", bands_rows[1], hint="e.g. 8 as in FineWeb")
        num_perm = bands * rows
    docs, _ = as_documents("documents", documents)
    encoded = [[" ".join(map(str, shingle)).encode("utf-8") for shingle in shingles(doc, n)] for doc in docs]
    signatures = MinHash.bulk(encoded, num_perm=num_perm, seed=seed)
    index = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    pairs = []
    for i, signature in enumerate(signatures):  # query before insert: each pair once, as (earlier, later)
        pairs += [(j, i) for j in sorted(index.query(signature))]
        index.insert(i, signature)
    pairs_arr = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    estimates = np.array([signatures[i].jaccard(signatures[j]) for i, j in pairs_arr], dtype=float)
    clusters = _clusters(len(docs), pairs_arr)
    dropped = {doc for members in clusters for doc in members[1:]}
    kept = np.array([i for i in range(len(docs)) if i not in dropped], dtype=np.int64)
    return Dedup(kept=kept, clusters=clusters, pairs=pairs_arr, estimated_jaccard=estimates, n_documents=len(docs),
                 bands=bands, rows=rows, num_perm=num_perm, n=n)


def _clusters(size: int, pairs: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """Connected components (union-find) of two or more documents, each ascending, ordered by first member."""
    parent = list(range(size))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        ri, rj = root(int(i)), root(int(j))
        if ri != rj:
            parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = {}
    for i in range(size):
        groups.setdefault(root(i), []).append(i)
    return tuple(tuple(g) for g in sorted(groups.values()) if len(g) > 1)


@dataclass(frozen=True)
class NearDuplicates:
    """Edited copies of chosen documents: copies[k] is documents[sources[k]] edited to about target[k] Jaccard."""
    copies: list            # strings (words joined by single spaces) or lists of token ids, like the input
    sources: np.ndarray     # int [k]: the document each copy was made from
    target: np.ndarray      # float [k]: the Jaccard asked for
    jaccard: np.ndarray     # float [k]: the exact shingle Jaccard of copy and source, computed afterwards
    n: int                  # shingle length used


def plant_near_duplicates(documents, jaccards, seed: int = 0, *, n: int = SHINGLE_N) -> NearDuplicates:
    """Copies of randomly chosen documents, tokens substituted until their n-gram shingle Jaccard nears each target.

    One copy per entry of `jaccards` (each in [0, 1]), from distinct documents of at least n tokens chosen by
    `seed`. Tokens are replaced, at random positions, by other tokens of the documents' own vocabulary, one at a
    time, until the Jaccard with the source is nearest the target; the exact Jaccard (`exact_jaccard`) of the
    result is returned beside the target. Substitutions only: the copy keeps its source's length.
    """
    seed = validate.integer("seed", seed, low=0, hint="e.g. 0")
    n = validate.integer("n", n, hint=f"the shingle length, e.g. {SHINGLE_N} as in FineWeb")
    docs, kind = as_documents("documents", documents)
    try:
        targets = [validate.number(f"jaccards[{k}]", j, low=0.0, low_open=False, high=1.0, hint="a Jaccard in [0, 1]")
                   for k, j in enumerate(jaccards)]
    except TypeError:
        raise ValueError(f"jaccards={jaccards!r} must be a list of target Jaccard similarities in [0, 1]") from None
    if not targets:
        raise ValueError("jaccards is empty; pass at least one target Jaccard similarity in [0, 1], e.g. [0.9, 0.5]")
    eligible = [i for i, doc in enumerate(docs) if len(doc) >= n]
    if len(eligible) < len(targets):
        raise ValueError(f"jaccards asks for {len(targets)} copies but only {len(eligible)} documents have at least "
                         f"n={n} tokens; pass fewer targets or more (longer) documents")
    vocabulary = sorted({token for doc in docs for token in doc})
    if len(vocabulary) < 2:
        raise ValueError("documents use fewer than two distinct tokens; there is nothing to substitute")
    rng = np.random.default_rng(seed)
    sources = rng.choice(eligible, size=len(targets), replace=False)
    copies, achieved = [], []
    for source, target in zip(sources, targets):
        edited = _edit_to_jaccard(docs[source], target, vocabulary, rng, n)
        achieved.append(_jaccard(shingles(docs[source], n), shingles(edited, n)))  # recomputed from scratch
        copies.append(" ".join(edited) if kind == TEXT else list(edited))
    return NearDuplicates(copies=copies, sources=sources.astype(np.int64), target=np.array(targets, dtype=float),
                          jaccard=np.array(achieved, dtype=float), n=n)


def _edit_to_jaccard(tokens: tuple, target: float, vocabulary: list, rng: np.random.Generator, n: int) -> tuple:
    """`tokens` with substitutions at random positions, stopped where the shingle Jaccard is nearest `target`."""
    original = shingles(tokens, n)
    copy = list(tokens)
    counts: dict[tuple, int] = {}
    for shingle in (tuple(copy[s:s + n]) for s in range(len(copy) - n + 1)):
        counts[shingle] = counts.get(shingle, 0) + 1
    shared, extra = len(original), 0   # distinct copy shingles inside / outside the original's set

    def change(shingle: tuple, delta: int) -> None:
        nonlocal shared, extra
        before = counts.get(shingle, 0)
        counts[shingle] = before + delta
        if (before == 0) != (before + delta == 0):  # the shingle appears in or vanishes from the copy's set
            step = 1 if before == 0 else -1
            if shingle in original:
                shared += step
            else:
                extra += step

    best_gap, best_edits, edits = abs(1.0 - target), 0, []
    for position in rng.permutation(len(copy)):
        starts = range(max(0, position - n + 1), min(position, len(copy) - n) + 1)
        for s in starts:
            change(tuple(copy[s:s + n]), -1)
        old = copy[position]
        new = old
        while new == old:
            new = vocabulary[rng.integers(len(vocabulary))]
        copy[position] = new
        for s in starts:
            change(tuple(copy[s:s + n]), +1)
        edits.append((position, new))
        jaccard = shared / (len(original) + extra)
        if abs(jaccard - target) < best_gap:
            best_gap, best_edits = abs(jaccard - target), len(edits)
        if jaccard < target:  # it only falls from here (by more substitutions), bar rare accidental matches
            break
    result = list(tokens)
    for position, new in edits[:best_edits]:
        result[position] = new
    return tuple(result)
