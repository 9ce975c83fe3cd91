"""Notebook 07, evaluation and data quality: is the low loss real?

documents  documents as strings (whitespace words) or token ids; their n-grams and shingle sets
overlap    contamination: plant copies of test documents into training data; find them by 13-gram overlap (GPT-3)
contaminated  a Corpus with planted validation rows in its training stream (cl.contaminate(corpus, rows, copies))
dedup      near-duplicates: MinHash LSH as FineWeb (5-gram shingles, 14 bands x 8 rows), exact Jaccard, planted copies
gate       silent regressions: a candidate against a baseline on several slices, paired bootstrap over documents
membership membership inference: loss score and Min-K% Prob (Shi et al.), exact ROC AUC; near chance (MIMIR)
           for members seen once against non-members of the same distribution
memorisation  extractable memorisation (Carlini et al. 2022): greedy continuations of planted rows, log-linear fit
junk       junk rows mixed into the training stream at a set share (random ids, shuffled rows, boilerplate)
quality    a perplexity filter under a reference model (CCNet), calibrated to a stated false-positive rate
watch      SliceLossCallback: the loss on named sets of rows over training (planted against clean)
datasheet  Datasheets for Datasets (Gebru et al.) generated for every corpus; the shipped ones in data/datasheets/
pilot, study, junk_study, results   notebook 07's shipped study: its runs, their measurement, read back
"""
from cot_lab.evaluation.dedup import (FINEWEB_BANDS, FINEWEB_ROWS, FINEWEB_THRESHOLD, Dedup, NearDuplicates,
                                      bands_rows_for, candidate_probability, dedup, exact_jaccard,
                                      plant_near_duplicates)
from cot_lab.evaluation.contaminated import ContaminatedCorpus
from cot_lab.evaluation.datasheet import Datasheet, datasheet, shipped_datasheet
from cot_lab.evaluation.junk import JunkCorpus, add_junk
from cot_lab.evaluation.memorisation import (Continuations, MemorisationCurve, continuation_matches, exact_match_rate,
                                             greedy_continuation, leading_match_fraction, memorisation_curve)
from cot_lab.evaluation.quality import (FilteredCorpus, FilterScore, QualityFilter, calibrate_threshold,
                                        quality_filter, split_clean_rows)
from cot_lab.evaluation.results import load_evaluation_results
from cot_lab.evaluation.watch import SliceLossCallback
from cot_lab.evaluation.gate import (GateReport, SliceResult, document_losses, evaluation_gate,
                                     evaluation_gate_from_losses, paired_interval)
from cot_lab.evaluation.membership import (MembershipReport, chance_se, loss_score, membership_report, min_k_prob,
                                           roc_auc, token_logprobs)
from cot_lab.evaluation.overlap import DetectionScore, Overlap, Plants, contaminate, ngram_overlap

__all__ = ["ContaminatedCorpus", "FINEWEB_BANDS", "FINEWEB_ROWS", "FINEWEB_THRESHOLD", "Dedup", "NearDuplicates", "bands_rows_for",
           "candidate_probability", "dedup", "exact_jaccard", "plant_near_duplicates", "DetectionScore", "Overlap",
           "Plants", "contaminate", "ngram_overlap", "GateReport", "SliceResult", "document_losses", "evaluation_gate",
           "evaluation_gate_from_losses", "paired_interval", "MembershipReport", "chance_se", "loss_score",
           "membership_report", "min_k_prob", "roc_auc", "token_logprobs", "Datasheet", "datasheet",
           "shipped_datasheet", "JunkCorpus", "add_junk", "Continuations", "MemorisationCurve", "continuation_matches",
           "exact_match_rate", "greedy_continuation", "leading_match_fraction", "memorisation_curve", "FilteredCorpus",
           "FilterScore", "QualityFilter", "calibrate_threshold", "quality_filter", "split_clean_rows",
           "load_evaluation_results", "SliceLossCallback"]
