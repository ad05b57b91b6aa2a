"""Attribution methods (extremal perturbations)."""
