"""Masked language modelling (BERT, Devlin et al. 2019, §3.1): the masking of token ids and the loss.

:func:`mask_tokens` picks each real token with probability ``mlm_probability`` (15 %), never a special token
or padding; of the picked tokens 80 % become the mask id, 10 % a random id and 10 % stay as they are. The
labels hold the original id at picked positions and ``IGNORE_INDEX`` elsewhere, so
:func:`masked_lm_loss` (cross-entropy) counts the picked tokens only. DeCLUTR masks its anchors this way
(``masked_lm_utils._mask_tokens``, copied from ``transformers``' language-modelling example).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["IGNORE_INDEX", "mask_tokens", "masked_lm_loss"]

IGNORE_INDEX = -100


def mask_tokens(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_token_ids: Sequence[int] = (),
    mlm_probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask token ids for MLM: 80 % mask id, 10 % random id, 10 % unchanged.

    Args:
        input_ids: token ids (B, L); not modified.
        attention_mask: 1 on real tokens, 0 on padding (B, L).
        mask_token_id: the id that replaces 80 % of the picked tokens.
        vocab_size: random replacements are drawn from ``[0, vocab_size)``.
        special_token_ids: ids that are never picked (``[CLS]``, ``</s>``, ...).
        mlm_probability: the chance of each real, non-special token to be picked.
        generator: the source of the draws (None: torch's default generator).

    Returns:
        The masked ids (B, L) and the labels (B, L): the original id where picked, ``IGNORE_INDEX`` elsewhere.
    """
    draw = dict(device=input_ids.device, generator=generator)
    pickable = attention_mask.bool() & ~torch.isin(
        input_ids, torch.as_tensor(list(special_token_ids), dtype=input_ids.dtype, device=input_ids.device)
    )
    picked = (torch.rand(input_ids.shape, **draw) < mlm_probability) & pickable  # (B, L)
    labels = input_ids.masked_fill(~picked, IGNORE_INDEX)
    replaced = (torch.rand(input_ids.shape, **draw) < 0.8) & picked
    randomised = (torch.rand(input_ids.shape, **draw) < 0.5) & picked & ~replaced  # half of the other 20 %
    random_ids = torch.randint(vocab_size, input_ids.shape, dtype=input_ids.dtype, **draw)
    masked = input_ids.masked_fill(replaced, mask_token_id)
    masked = torch.where(randomised, random_ids, masked)
    return masked, labels


def masked_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the vocabulary logits (B, L, V) at the picked positions of ``labels`` (B, L).

    A batch with no picked token gives 0 (connected to the graph), not NaN.
    """
    picked = labels != IGNORE_INDEX
    if not picked.any():
        return logits.sum() * 0.0
    return F.cross_entropy(logits[picked], labels[picked])
