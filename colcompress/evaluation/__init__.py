"""Evaluation: encoding, indexing, metrics, baselines, utilization."""
