"""Feature crops: crop the backbone's feature map instead of the pixels (STiCA, Patrick et al. 2021).

One backbone pass gives a map (B, C, T, H, W); a *spatial* crop is a window of its H × W grid (all
times), a *temporal* crop a window of its T steps (all positions). Large and small crops stand in for
the large and small pixel crops of multi-crop training at the cost of a pooling head per crop instead of
a backbone pass per crop. One window location is drawn per crop and shared by the batch (as the
original). Default window sizes follow the original on a 7 × 7 grid (large 6, small 4) and T = 4 or 8
steps (large ¾ T, small ½ T).

The original draws offsets with ``np.random.randint(0, size - window)``, whose exclusive upper bound
never reaches the last position (large spatial crops are always ``[0:6, 0:6]``); ``original_offsets``
reproduces that, the default draws every valid offset.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["FeatureCrop", "FeatureCropSampler", "crop_feature_map"]


@dataclass(frozen=True)
class FeatureCrop:
    """A window of a feature map: ``time``, ``height``, ``width`` as (start, stop) index pairs."""

    time: tuple[int, int]
    height: tuple[int, int]
    width: tuple[int, int]


def crop_feature_map(feature_map: torch.Tensor, crop: FeatureCrop) -> torch.Tensor:
    """``feature_map[:, :, t0:t1, h0:h1, w0:w1]`` of a map (B, C, T, H, W)."""
    (t0, t1), (h0, h1), (w0, w1) = crop.time, crop.height, crop.width
    return feature_map[:, :, t0:t1, h0:h1, w0:w1]


@dataclass
class FeatureCropSampler:
    """Draws the large and small, spatial and temporal crops of one map.

    Args:
        spatial_large: large spatial crops per view (the original allows at most 2).
        spatial_small: small spatial crops per view.
        temporal_large: large temporal crops per view (at most 2).
        temporal_small: small temporal crops per view.
        spatial_sizes: (large, small) windows in grid cells; ``None``: (S − 1, round(4 S / 7)).
        temporal_sizes: (large, small) windows in time steps; ``None``: (round(3 T / 4), T // 2).
        original_offsets: draw offsets in [0, size − window) as the original does (never the last one).
    """

    spatial_large: int = 2
    spatial_small: int = 4
    temporal_large: int = 2
    temporal_small: int = 1
    spatial_sizes: tuple[int, int] | None = None
    temporal_sizes: tuple[int, int] | None = None
    original_offsets: bool = False

    def __post_init__(self) -> None:
        if self.spatial_large > 2 or self.temporal_large > 2:
            raise ValueError(
                "at most 2 large spatial and 2 large temporal crops (the large-large term pairs 2)"
            )

    def sizes(self, time: int, side: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """(large, small) spatial and temporal windows for a map of ``time`` steps and ``side`` cells."""
        spatial = self.spatial_sizes or (max(1, side - 1), max(1, round(4 * side / 7)))
        temporal = self.temporal_sizes or (max(1, round(3 * time / 4)), max(1, time // 2))
        for name, (large, small), limit in (("spatial", spatial, side), ("temporal", temporal, time)):
            if not 0 < small <= large <= limit:
                raise ValueError(
                    f"{name} crop sizes (large {large}, small {small}) must satisfy 0 < small <= large <= {limit}"
                    " (the feature map's size): use a larger input or set the sizes"
                )
        return spatial, temporal

    def _offset(self, size: int, window: int, generator: torch.Generator | None) -> int:
        high = size - window if self.original_offsets else size - window + 1
        return int(torch.randint(max(high, 1), (1,), generator=generator))

    def _window(self, size: int, window: int, generator: torch.Generator | None) -> tuple[int, int]:
        start = self._offset(size, window, generator)
        return start, start + window

    def sample(
        self, shape: tuple[int, int, int], generator: torch.Generator | None = None
    ) -> dict[str, list[FeatureCrop]]:
        """Crops of a map with (T, H, W) = ``shape``: ``{"spatial_large", "spatial_small", "temporal_large",
        "temporal_small"}`` → lists of :class:`FeatureCrop`. Spatial crops are square (H = W expected)."""
        time, height, width = shape
        (s_large, s_small), (t_large, t_small) = self.sizes(time, min(height, width))
        whole_t, whole_h, whole_w = (0, time), (0, height), (0, width)

        def spatial(window: int) -> FeatureCrop:
            return FeatureCrop(
                whole_t, self._window(height, window, generator), self._window(width, window, generator)
            )

        def temporal(window: int) -> FeatureCrop:
            return FeatureCrop(self._window(time, window, generator), whole_h, whole_w)

        return {
            "spatial_large": [spatial(s_large) for _ in range(self.spatial_large)],
            "spatial_small": [spatial(s_small) for _ in range(self.spatial_small)],
            "temporal_large": [temporal(t_large) for _ in range(self.temporal_large)],
            "temporal_small": [temporal(t_small) for _ in range(self.temporal_small)],
        }
