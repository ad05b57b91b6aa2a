"""Multiple-choice video QA with self-supervised pre-training and contrastive representation learning.

Kim, Jeong, Kim, Kang, Kwak, AAAI 2021, https://arxiv.org/abs/2009.08043. No code or weights were
released, and only the abstract, the opening of §1 and the caption of Fig. 1 could be read: this is a
re-implementation in which everything beyond those is zoo's decision, listed below.

What the paper says (and this class does):

* Inputs: per-frame visual features; text = the question, a candidate answer, subtitles and detected
  object labels (Fig. 1).
* Locally aligned attention: each subtitle sentence attends to the frames relevant to it
  (:class:`~zoo.models.videoqa.LocallyAlignedAttention`).
* Answer scores from both the text and the video stream (:class:`~zoo.models.videoqa.TwoStreamQAScorer`).
* A self-supervised stage that puts the question in the answer slot: the model picks, for a clip, its
  own question among candidates — no extra data or labels.
* In the main stage, an auxiliary contrastive loss: the ground-truth answer's input with masking noise is
  the anchor, the unmasked ground-truth input the positive and the other candidates' inputs the
  negatives.

Field by field, zoo's decisions (the paper's values could not be read):

* ``text_encoder`` / ``text_encoder_kwargs``: any ``transformers`` encoder with mean pooling (the paper's
  encoder is not in the text read). Candidates are ``question + separator + answer``
  (:class:`~zoo.data.datamodules.MultipleChoiceQADataModule`). A candidate's embedding is that whole input's
  next to its answer slot's (:func:`answer_token_mask`: the tokens after those it shares with the question),
  the slot moved to the front and encoded on its own: inside the whole input the answer is a few percent of
  the mean and sits at positions set by the question's length, so the same answer reads differently after
  every question.
* ``video_encoder`` / ``video_encoder_kwargs``: a per-frame 2D CNN trained end to end (the paper uses
  frozen ResNet-101 features; give ``frame_resnet50`` with ``param_groups`` freezing it for that). The
  SynthMotion recipe uses ``frame_convnet`` (:class:`~zoo.models.frame_features.SmallConvNet`: three 3×3
  convolutions, 94 k parameters, spatial max pooling): with no pretrained features, a ResNet-10 (4.9 M
  parameters, a 1×1 last map at 32 px) trained from scratch through the QA scores alone stayed at chance,
  and so did the small convnet with spatial averaging, which dilutes an object covering a few percent of
  the frame against its textured background. A spatial max keeps the object but not where it is, so the
  recipe adds ``position_pool``: the soft-argmax (x, y) of a learned saliency map next to the max, a
  trajectory frame by frame (motion on test items, one seed at 12 QA epochs: 27 % without, 33 % with).
  CoordConv input channels instead (x and y maps beside the pixels) did worse (23 % motion, 30 % overall),
  and so did a fourth convolution (20 % motion): the three convolutions with their two 2×2 poolings
  already see 18 px, more than the largest object (8 px at 32 px).
* ``frame_difference`` (off by default, on in the SynthMotion recipe): each frame enters with its difference
  to the next frame as three more channels (residual frames, Tao et al. 2020; the encoder takes
  ``in_chans: 6``): it sets a moving object apart from a static background and gives each frame the
  direction of its change.
* ``frame_positions`` (off by default, on in the SynthMotion recipe): the scorer adds a sinusoidal
  embedding of each frame's index (Vaswani et al. 2017) to the projected frames; its attention otherwise
  treats the frames as a set (differences tell each frame's direction of change, not when it comes). On
  SynthMotion it took the QA-only run from 31 to 42 % (one seed, 12 QA epochs).
* Recipe epochs: 20 QA epochs. At 12, training accuracy on motion questions was still 37 %; at 20 it is
  59 % and test motion accuracy rose from 33 to 40 %.
* ``text_only``: the frames are never read (one zero frame): the text-only answer-prior baseline.
* ``dim``, ``num_heads``, ``dropout``: width, heads and dropout of the scorer. The fused vector of a
  stream is ``[q, c, q ⊙ c]`` through one layer; a stream's score is a linear map of it; the two streams'
  scores add up.
* ``alignment_window``: seconds added on both sides of a sentence's span (0: the span exactly).
  ``local_attention: false`` lets every sentence see every frame (the global-attention ablation).
* ``pretrain_epochs``: the first epochs run the question-selection stage, the rest the QA stage (one
  run). Candidates of a clip are the questions of every item in the batch, its own the positive; a
  candidate whose text equals the positive's is left out (it would be a false negative). The question
  fills the candidate slot alone: it is both the whole input and the answer slot. The SynthMotion recipe
  turns the stage off (``pretrain_epochs: 0``): with 2 such epochs and 20 QA epochs after them the run
  stayed at chance (25 %, one seed) where QA alone reached 45 %; why is not found.
* ``mask_probability`` (0.15): each real token of the ground-truth input is masked with this
  probability, ``mask_token_id`` replacing it, or, without one, dropped from attention. The whole
  candidate input (question and answer) is masked; its answer slot is the slot's tokens left unmasked.
* ``contrastive_weight`` (1.0) and ``contrastive_temperature`` (0.1): L = L_qa + λ·L_cl, with
  L_cl = −log exp(cos(h̃_gt, h_gt)/τ) / Σ_k exp(cos(h̃_gt, h_k)/τ) over the A candidates, h the fused vector
  of the scorer. Not used in the question-selection stage. The SynthMotion recipe uses λ = 0.1: at λ = 1
  the term (an easy text match) is solved first and held the QA loss at chance for 60 steps on 32 items.
* No temporal-localisation head (not in the text read).

Optional batch keys (SynthMotion's QA items carry none; then the text stream is off and the video
stream alone scores): ``subtitles`` tokens (B, S, L), ``subtitle_spans`` (B, S, 2) seconds, ``subtitle_mask``
(B, S) bool and ``frame_times`` (B, T) seconds. Object labels enter as sentences whose span covers the
frames they were detected in.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from zoo.catalog import Paper
from zoo.errors import UsageError
from zoo.eval.multiple_choice import multiple_choice_accuracy
from zoo.methods.base import SSLMethod
from zoo.models.layers.frames import residual_frames
from zoo.models.videoqa import TwoStreamQAScorer, local_alignment_mask
from zoo.objectives.infonce import fp32_einsum, fp32_normalize

__all__ = ["VideoQA", "answer_token_mask", "left_align", "mask_tokens_noise", "masked_positive_loss"]


def left_align(ids: torch.Tensor, keep: torch.Tensor) -> dict[str, torch.Tensor]:
    """The tokens where ``keep`` is True moved to the front of their row, in order, as a token input.

    Args:
        ids: (..., L) token ids.
        keep: (..., L) bool, the tokens to keep.
    """
    order = torch.sort((~keep).to(torch.uint8), dim=-1, stable=True).indices  # kept tokens first
    kept = keep.gather(-1, order)
    return {"input_ids": ids.gather(-1, order) * kept, "attention_mask": kept.long()}


def answer_token_mask(candidates: dict[str, torch.Tensor], question: dict[str, torch.Tensor]) -> torch.Tensor:
    """The answer's tokens of each ``question + separator + answer`` input: (B, A, L) bool, True on the real
    tokens after those the candidate shares with its question's opening (the question's closing special
    token differs from the separator, so the separator and the closing token count as the answer's).

    Args:
        candidates: ``input_ids`` and ``attention_mask`` (B, A, L) of the candidates.
        question: ``input_ids`` and ``attention_mask`` (B, Lq) of the questions.
    """
    ids, real = candidates["input_ids"], candidates["attention_mask"].bool()
    n = min(ids.shape[-1], question["input_ids"].shape[-1])
    asked = question["input_ids"][:, None, :n], question["attention_mask"][:, None, :n].bool()  # (B, 1, n)
    same = (ids[..., :n] == asked[0]) & asked[1]  # (B, A, n)
    shared = same.long().cumprod(dim=-1).sum(dim=-1, keepdim=True)  # (B, A, 1): length of the common opening
    positions = torch.arange(ids.shape[-1], device=ids.device)
    return real & (positions >= shared)


def mask_tokens_noise(
    tokens: dict[str, torch.Tensor],
    probability: float,
    mask_token_id: int | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Masking noise on token inputs: each real token replaced by ``mask_token_id`` or, without one,
    dropped from attention, with ``probability``; at least one real token of each row is kept.

    Args:
        tokens: ``input_ids`` and ``attention_mask`` (..., L).
        probability: chance that a real token is masked.
        mask_token_id: the replacement id; None drops masked tokens from attention instead.
        generator: random source.
    """
    ids, attention = tokens["input_ids"], tokens["attention_mask"]
    real = attention.bool()
    draw = torch.rand(ids.shape, generator=generator, device="cpu").to(ids.device)
    masked = real & (draw < probability)
    first = real & (real.cumsum(dim=-1) == 1)  # keep each row's first real token (never an empty input)
    masked &= ~first
    if mask_token_id is None:
        return {"input_ids": ids, "attention_mask": attention * (~masked).long()}
    return {"input_ids": ids.masked_fill(masked, mask_token_id), "attention_mask": attention}


def masked_positive_loss(
    anchor: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor, temperature: float
) -> torch.Tensor:
    """InfoNCE of the masked ground-truth input against its unmasked self and the other candidates.

    Args:
        anchor: (B, D) the masked ground-truth input's fused vector h̃_gt.
        candidates: (B, A, D) the candidates' fused vectors h_k (unmasked).
        positive: (B,) index of the ground truth among the candidates.
        temperature: τ.
    """
    logits = fp32_einsum("bd,bad->ba", fp32_normalize(anchor), fp32_normalize(candidates))  # (B, A)
    return F.cross_entropy(logits / temperature, positive)


class VideoQA(SSLMethod):
    """Multiple-choice video QA (Kim et al., AAAI 2021): question-selection pre-training, then QA with the
    masked-positive contrastive term. See the module docstring for what follows the paper.

    Args:
        text_encoder: registered text encoder (``text_encoder``).
        text_encoder_kwargs: its arguments (``model_name_or_path`` or ``config``).
        video_encoder: registered per-frame encoder ((B, C, T, H, W) → (B, T, D)).
        video_encoder_kwargs: its arguments.
        dim: width of the scorer's streams.
        num_heads: attention heads of the scorer.
        dropout: dropout of the fusion layers.
        alignment_window: seconds added on both sides of a sentence's span.
        local_attention: sentences see only the frames of their span (False: all frames).
        pretrain_epochs: epochs of the question-selection stage before the QA stage.
        mask_probability: masking-noise rate of the ground-truth input.
        mask_token_id: id replacing masked tokens; None drops them from attention.
        contrastive_weight: λ of the masked-positive contrastive term (0: off).
        contrastive_temperature: τ of that term.
        frame_difference: each frame enters with its difference to the next frame as extra channels.
        frame_positions: the scorer adds a sinusoidal embedding of each frame's index to its features.
        text_only: the frames are never read (the text-only answer-prior baseline).
        **kwargs: optimisation settings of :class:`~zoo.methods.base.SSLMethod`.
    """

    paper = Paper(
        "Self-supervised Pre-training and Contrastive Representation Learning for Multiple-choice Video QA "
        "(AAAI 2021)",
        "https://arxiv.org/abs/2009.08043",
    )
    checkpoints = "videoqa*"

    def __init__(
        self,
        text_encoder: str = "text_encoder",
        text_encoder_kwargs: dict[str, Any] | None = None,
        video_encoder: str = "frame_resnet18",
        video_encoder_kwargs: dict[str, Any] | None = None,
        dim: int = 128,
        num_heads: int = 4,
        dropout: float = 0.1,
        alignment_window: float = 0.0,
        local_attention: bool = True,
        pretrain_epochs: int = 0,
        mask_probability: float = 0.15,
        mask_token_id: int | None = None,
        contrastive_weight: float = 1.0,
        contrastive_temperature: float = 0.1,
        frame_difference: bool = False,
        frame_positions: bool = False,
        text_only: bool = False,
        **kwargs: Any,
    ):
        kwargs.setdefault("online_probe", False)
        super().__init__(**kwargs)
        video = self.add_encoder("video", video_encoder, video_encoder_kwargs)
        channels = 6 if frame_difference else 3
        if getattr(video, "in_chans", channels) != channels:
            raise UsageError(
                f"video_encoder_kwargs: frame_difference={frame_difference} feeds {channels} channels per "
                f"frame, the video encoder takes {video.in_chans} (set backbone_args: {{in_chans: {channels}}})"
            )
        text = self.add_encoder("text", text_encoder, text_encoder_kwargs)
        width = text.num_features
        self.scorer = TwoStreamQAScorer(
            width,
            video.num_features,
            dim,
            num_heads,
            dropout,
            candidate_dim=2 * width,
            frame_positions=frame_positions,
        )

    # --- encoders ------------------------------------------------------------------------------------

    def encode_text(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Pooled embeddings (..., D) of token inputs (..., L)."""
        lead = tokens["input_ids"].shape[:-1]
        flat = {k: tokens[k].reshape(-1, tokens[k].shape[-1]) for k in ("input_ids", "attention_mask")}
        return self.encoders["text"].forward_features(flat).reshape(*lead, -1)

    def encode_candidates(self, tokens: dict[str, torch.Tensor], answer_slot: torch.Tensor) -> torch.Tensor:
        """Candidate embeddings (..., 2D): the whole input's next to the answer slot's, encoded on its own.

        Args:
            tokens: ``input_ids`` and ``attention_mask`` (..., L).
            answer_slot: (..., L) bool, the tokens in the answer slot (:func:`answer_token_mask`).
        """
        whole = self.encode_text(tokens)  # (..., D)
        answer = self.encode_text(left_align(tokens["input_ids"], answer_slot))  # (..., D)
        return torch.cat([whole, answer], dim=-1)

    def answer_slots(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The candidates ``question + separator + answer`` (B, A, L) of ``batch`` and their answer slots."""
        answers = self.require(batch, "answers", "tokenised question + candidate answers")
        questions = self.require(batch, "text", "the questions, tokenised")
        return answers, answer_token_mask(answers, questions)  # tokens, (B, A, L) bool

    def encode_frames(self, video: torch.Tensor) -> torch.Tensor:
        """Per-frame features (B, T, D) of clips (B, C, T, H, W); one zero frame for the text-only model."""
        encoder = self.encoders["video"]
        if self.hparams.text_only:
            return video.new_zeros(video.shape[0], 1, encoder.num_features)  # (B, 1, D): no visual input
        if self.hparams.frame_difference:  # each frame with its change to the next: order and direction
            video = torch.cat([video, residual_frames(video, keep_length=True)], dim=1)  # (B, 2C, T, H, W)
        return encoder.forward_features(video)

    def _sentences(self, batch: dict[str, Any], frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """The scorer's sentence inputs from the optional subtitle keys (empty without subtitles)."""
        if "subtitles" not in batch:
            return {}
        spans = self.require(batch, "subtitle_spans", "(B, S, 2) start/end seconds of each subtitle")
        times = self.require(batch, "frame_times", "(B, T) seconds of each frame")
        visible = local_alignment_mask(spans, times, self.hparams.alignment_window)  # (B, S, T)
        if not self.hparams.local_attention:
            visible = torch.ones_like(visible)
        return {
            "sentences": self.encode_text(batch["subtitles"]),  # (B, S, D)
            "sentence_visible": visible,
            "sentence_mask": batch.get("subtitle_mask"),
        }

    def score(
        self, candidates: torch.Tensor, frames: torch.Tensor, sentences: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (B, A) and fused vectors (B, A, D') of candidate embeddings (B, A, D) for each clip."""
        return self.scorer(candidates, frames, **sentences)

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Scores (B, A) of every candidate answer in ``batch["answers"]``."""
        frames = self.encode_frames(self.require(batch, "video", "give the data module video: true"))
        candidates = self.encode_candidates(*self.answer_slots(batch))  # (B, A, 2D)
        return self.score(candidates, frames, self._sentences(batch, frames))[0]

    # --- the two stages --------------------------------------------------------------------------------

    @property
    def in_pretraining(self) -> bool:
        """Whether this epoch belongs to the question-selection stage."""
        return self.current_epoch < self.hparams.pretrain_epochs

    def question_selection(
        self, batch: dict[str, Any], frames: torch.Tensor, sentences: dict
    ) -> torch.Tensor:
        """Logits (B, B): clip i against every question of the batch in the answer slot; a question whose
        text equals clip i's own (other than its own) is left out."""
        questions = self.require(batch, "text", "the questions, tokenised")
        embedded = self.encode_candidates(questions, questions["attention_mask"].bool())  # (B, 2D)
        b = embedded.shape[0]
        candidates = embedded[None].expand(b, -1, -1)  # (B, B, D): every question for every clip
        logits, _ = self.score(candidates, frames, sentences)  # (B, B)
        ids = questions["input_ids"] * questions["attention_mask"]
        same = (ids[:, None, :] == ids[None, :, :]).all(dim=-1)  # (B, B)
        same &= ~torch.eye(b, dtype=torch.bool, device=same.device)
        return logits.masked_fill(same, float("-inf"))

    def ssl_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        frames = self.encode_frames(
            self.require(batch, "video", "give the data module video: true")
        )  # (B, T, D)
        sentences = self._sentences(batch, frames)
        features = frames.mean(dim=1).detach()  # (B, D)
        if self.in_pretraining:
            logits = self.question_selection(batch, frames, sentences)
            target = torch.arange(len(logits), device=logits.device)
            loss = F.cross_entropy(logits, target)
            return {"loss": loss, "question_loss": loss, "features": features}
        answer = self.require(batch, "answer")
        known = answer >= 0
        answers, slot = self.answer_slots(batch)  # tokens and answer slots (B, A, L)
        candidates = self.encode_candidates(answers, slot)  # (B, A, 2D)
        scores, fused = self.score(candidates, frames, sentences)  # (B, A), (B, A, D')
        qa_loss = F.cross_entropy(scores[known], answer[known])
        out = {"qa_loss": qa_loss, "features": features}
        loss = qa_loss
        if self.hparams.contrastive_weight > 0:
            rows = torch.arange(len(answer), device=answer.device)
            truth = {k: v[rows, answer.clamp(min=0)] for k, v in answers.items()}  # (B, L)
            noisy = mask_tokens_noise(truth, self.hparams.mask_probability, self.hparams.mask_token_id)
            noisy_slot = slot[rows, answer.clamp(min=0)] & noisy["attention_mask"].bool()  # (B, L)
            masked = self.encode_candidates(noisy, noisy_slot)[:, None]  # (B, 1, 2D)
            anchor = self.score(masked, frames, sentences)[1][:, 0]  # (B, D')
            contrastive = masked_positive_loss(
                anchor[known], fused[known], answer[known], self.hparams.contrastive_temperature
            )
            out["contrastive_loss"] = contrastive
            loss = loss + self.hparams.contrastive_weight * contrastive
        out["loss"] = loss
        return out

    @torch.no_grad()
    def ssl_validation_step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``accuracy`` (%) on the batch's items with a known answer, and ``question_accuracy`` (%) of the
        question-selection task."""
        frames = self.encode_frames(self.require(batch, "video"))
        sentences = self._sentences(batch, frames)
        answer = self.require(batch, "answer")
        known = answer >= 0
        scores = self.score(self.encode_candidates(*self.answer_slots(batch)), frames, sentences)[0]
        out = {}
        if known.any():
            out["accuracy"] = torch.tensor(multiple_choice_accuracy(scores[known], answer[known])["accuracy"])
        logits = self.question_selection(batch, frames, sentences)
        picked = logits.argmax(dim=1) == torch.arange(len(logits), device=logits.device)
        out["question_accuracy"] = 100 * picked.float().mean()
        return out

    def features(self, batch: dict[str, Any]) -> torch.Tensor:
        """Frame-averaged video features (B, D)."""
        return self.encode_frames(batch["video"]).mean(dim=1)
