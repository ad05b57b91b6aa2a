"""Reusable building blocks shared by model families."""
