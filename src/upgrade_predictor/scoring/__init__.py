"""Scoring with a model bundle: the one scoring function, its fast path, batch files and Dask."""
