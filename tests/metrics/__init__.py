"""Tests of the metrics: counts, scores, reductions, confusion matrices, surface metrics."""
