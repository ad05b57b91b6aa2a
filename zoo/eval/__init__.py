"""Evaluation protocols: linear probe, kNN, retrieval, clustering; callbacks."""
