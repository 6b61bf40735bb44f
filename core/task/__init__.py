"""Sentence-pair tasks: build one from a parallel corpus, read PAWS-X/XNLI/generic pair files,
and predict with a pair-classification checkpoint.

`build.py` makes the cross-lingual paraphrase task, `pairs_io.py` reads every pairs format into
one validated frame, `predict.py` runs a checkpoint's head over it.
"""
