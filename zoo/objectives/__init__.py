"""Losses and assignment solvers (no Lightning, no files)."""

from zoo.objectives.infonce import (
    CrossModalInfoNCELoss,
    InfoNCELoss,
    NTXentLoss,
    cross_modal_info_nce_loss,
    info_nce_loss,
    nt_xent_loss,
)
from zoo.objectives.optimal_transport import temporal_log_prior, temporal_ot_assignment
from zoo.objectives.ranking import batch_hard_triplet_loss, max_margin_ranking_loss
from zoo.objectives.sinkhorn import SinkhornKnoppResult, sinkhorn, sinkhorn_knopp, sinkhorn_swav

__all__ = [
    "CrossModalInfoNCELoss",
    "InfoNCELoss",
    "NTXentLoss",
    "SinkhornKnoppResult",
    "batch_hard_triplet_loss",
    "cross_modal_info_nce_loss",
    "info_nce_loss",
    "max_margin_ranking_loss",
    "nt_xent_loss",
    "sinkhorn",
    "sinkhorn_knopp",
    "sinkhorn_swav",
    "temporal_log_prior",
    "temporal_ot_assignment",
]
