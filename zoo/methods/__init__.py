"""LightningModules, one per method; base.py holds what they share."""
