"""Losses and assignment solvers (no Lightning, no files)."""
