"""The NTPS mathematics: statistics, eigen subspaces, scores, the shuffled-label null, probes and
rank correlations, as pure functions on arrays.

The boundary, which tests/core/test_boundary.py keeps: numpy, scipy and torch for the algebra,
scikit-learn for the probes, pandas only for the score tables the functions return, tqdm for progress
bars and threadpoolctl to pin BLAS threads; never Kedro, MLflow, transformers or datasets, and no file
reads or writes, so that every function runs on arrays in memory, in a test or in a notebook.
"""
