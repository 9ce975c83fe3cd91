"""Generation and exact scoring of the synthetic language, version 3 against version 2, in one run of this script.

    python benchmarks/language_speed.py [--rows 4096] [--seq-len 128] [--repeats 5]

Each version samples `rows` rows of seq_len + 1 tokens (what one training chunk holds) and scores them;
printed: the median seconds of each and the ratio version 3 / version 2, interleaved so both see the
same machine. Target (the language issue): version 3 generates within 2x of version 2's time.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from cot_lab.data import synthetic_grammar as grammar
from cot_lab.data.synthetic import SyntheticCorpus

TARGET_RATIO = 2.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4096)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    corpora = {2: SyntheticCorpus(version=2), 3: SyntheticCorpus(version=3)}
    seconds = {(v, what): [] for v in corpora for what in ("generate", "score")}
    for repeat in range(args.repeats + 1):  # the first round warms caches and is not counted
        for version, corpus in corpora.items():
            start = time.perf_counter()
            tokens, _, _ = grammar.sample(corpus.language, args.rows, args.seq_len + 1, np.random.default_rng(repeat))
            generated = time.perf_counter()
            corpus.score(tokens)
            scored = time.perf_counter()
            if repeat:
                seconds[version, "generate"].append(generated - start)
                seconds[version, "score"].append(scored - generated)
    tokens = args.rows * args.seq_len
    for what in ("generate", "score"):
        v2, v3 = (float(np.median(seconds[v, what])) for v in (2, 3))
        verdict = "" if what == "score" else ("  OK" if v3 / v2 <= TARGET_RATIO else f"  MISS (target <= {TARGET_RATIO}x)")
        print(f"{what:8s}  version 2 {v2:.3f} s ({tokens / v2 / 1e6:.2f}M tok/s)  version 3 {v3:.3f} s "
              f"({tokens / v3 / 1e6:.2f}M tok/s)  ratio {v3 / v2:.2f}x{verdict}")


if __name__ == "__main__":
    main()
