"""Notebook 07, evaluation and data quality: is the low loss real?

documents  documents as strings (whitespace words) or token ids; their n-grams and shingle sets
overlap    contamination: plant copies of test documents into training data; find them by 13-gram overlap (GPT-3)
contaminated  a Corpus with planted validation rows in its training stream (cl.contaminate(corpus, rows, copies))
dedup      near-duplicates: MinHash LSH as FineWeb (5-gram shingles, 14 bands x 8 rows), exact Jaccard, planted copies
gate       silent regressions: a candidate against a baseline on several slices, paired bootstrap over documents
membership membership inference: loss score and Min-K% Prob (Shi et al.), exact ROC AUC; near chance (MIMIR)
           for members seen once against non-members of the same distribution
"""
from cot_lab.evaluation.dedup import (FINEWEB_BANDS, FINEWEB_ROWS, FINEWEB_THRESHOLD, Dedup, NearDuplicates,
                                      bands_rows_for, candidate_probability, dedup, exact_jaccard,
                                      plant_near_duplicates)
from cot_lab.evaluation.contaminated import ContaminatedCorpus
from cot_lab.evaluation.gate import (GateReport, SliceResult, document_losses, evaluation_gate,
                                     evaluation_gate_from_losses, paired_interval)
from cot_lab.evaluation.membership import (MembershipReport, chance_se, loss_score, membership_report, min_k_prob,
                                           roc_auc, token_logprobs)
from cot_lab.evaluation.overlap import DetectionScore, Overlap, Plants, contaminate, ngram_overlap

__all__ = ["ContaminatedCorpus", "FINEWEB_BANDS", "FINEWEB_ROWS", "FINEWEB_THRESHOLD", "Dedup", "NearDuplicates", "bands_rows_for",
           "candidate_probability", "dedup", "exact_jaccard", "plant_near_duplicates", "DetectionScore", "Overlap",
           "Plants", "contaminate", "ngram_overlap", "GateReport", "SliceResult", "document_losses", "evaluation_gate",
           "evaluation_gate_from_losses", "paired_interval", "MembershipReport", "chance_se", "loss_score",
           "membership_report", "min_k_prob", "roc_auc", "token_logprobs"]
