"""Multiple-choice video QA: the local alignment mask from timestamps, locally aligned attention, the
masked-positive contrastive term against reference math, masking noise, both training stages, the answer
slot encoded on its own, frame differences, the text-only baseline, and QA items whose answer index is out
of range; the recipe's per-frame encoder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tiny_bert

from zoo.data.datamodules import MultipleChoiceQADataModule
from zoo.data.formats import ManifestError
from zoo.data.samples import synthmotion_qa_records
from zoo.errors import UsageError
from zoo.methods.videoqa import (
    VideoQA,
    answer_token_mask,
    left_align,
    mask_tokens_noise,
    masked_positive_loss,
)
from zoo.models.frame_features import SmallConvNet
from zoo.models.videoqa import (
    LocallyAlignedAttention,
    TwoStreamQAScorer,
    local_alignment_mask,
    sinusoidal_positions,
)

TINY_BERT = {"config": tiny_bert(vocab_size=40, max_position_embeddings=32)}


def _model(in_chans: int = 3, **kwargs) -> VideoQA:
    torch.manual_seed(0)
    return VideoQA(
        text_encoder_kwargs=TINY_BERT,
        video_encoder="frame_resnet18",
        video_encoder_kwargs={"backbone": "resnet10", "backbone_args": {"in_chans": in_chans}},
        dim=16,
        num_heads=2,
        dropout=0.0,
        **kwargs,
    ).eval()


def _tokens(*shape: int, length: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 40, (*shape, length), generator=g)
    attention = torch.ones_like(ids)
    attention[..., -2:] = 0  # two pads at the end
    return {"input_ids": ids * attention, "attention_mask": attention}


def _batch(b: int = 4, a: int = 3, t: int = 4) -> dict:
    g = torch.Generator().manual_seed(1)
    return {
        "video": torch.randn(b, 3, t, 16, 16, generator=g),
        "text": _tokens(b, seed=2),
        "answers": _tokens(b, a, seed=3),
        "answer": torch.tensor([0, 2, 1, 2])[:b],
        "index": torch.arange(b),
    }


def test_local_alignment_mask_keeps_the_frames_inside_each_span():
    spans = torch.tensor([[[0.0, 1.0], [1.5, 2.5], [9.0, 9.5]]])  # (1, 3, 2)
    times = torch.tensor([[0.0, 0.5, 1.0, 1.5, 2.0, 3.0]])  # (1, 6)
    expected = torch.tensor([[[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 0]]], dtype=torch.bool)
    assert torch.equal(local_alignment_mask(spans, times), expected)
    widened = local_alignment_mask(spans, times, window=0.5)
    assert widened[0, 0].tolist() == [True, True, True, True, False, False]
    assert widened[0, 1].tolist() == [False, False, True, True, True, True]


def test_locally_aligned_attention_sees_only_the_frames_of_its_span():
    torch.manual_seed(0)
    attention = LocallyAlignedAttention(8, num_heads=2).eval()
    sentences = torch.randn(1, 3, 8)
    frames = torch.randn(1, 5, 8, requires_grad=True)
    visible = torch.tensor([[[1, 1, 0, 0, 0], [0, 0, 1, 1, 1], [0, 0, 0, 0, 0]]], dtype=torch.bool)
    out = attention(sentences, frames, visible)
    # sentence 0: no gradient reaches frames 2..4; sentence 1: none reaches frames 0..1
    (grad0,) = torch.autograd.grad(out[0, 0].sum(), frames, retain_graph=True)
    (grad1,) = torch.autograd.grad(out[0, 1].sum(), frames)
    assert grad0[0, 2:].abs().max() == 0 and grad0[0, :2].abs().max() > 0
    assert grad1[0, :2].abs().max() == 0 and grad1[0, 2:].abs().max() > 0
    # a sentence with no frame in its span gets no visual context: norm(sentence) exactly
    torch.testing.assert_close(out[0, 2], attention.norm(sentences[0, 2]))
    # global attention (every frame visible) mixes in the other frames: a different output
    everything = attention(sentences, frames, torch.ones_like(visible))
    assert not torch.allclose(everything[0, 0], out[0, 0])


def test_masked_positive_loss_matches_reference_math_and_is_lowest_at_the_positive():
    g = torch.Generator().manual_seed(0)
    anchor, candidates = torch.randn(3, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    positive = torch.tensor([1, 0, 3])
    loss = masked_positive_loss(anchor, candidates, positive, temperature=0.2)
    expected = 0.0
    for b in range(3):
        sims = [
            float(anchor[b] @ candidates[b, k] / (anchor[b].norm() * candidates[b, k].norm())) / 0.2
            for k in range(4)
        ]
        expected += -(sims[positive[b]] - math.log(sum(math.exp(s) for s in sims)))
    assert float(loss) == pytest.approx(expected / 3, rel=1e-5)
    # the invariance: the loss is minimised when the masked encoding coincides with the unmasked positive
    at_positive = masked_positive_loss(candidates[torch.arange(3), positive], candidates, positive, 0.2)
    at_negative = masked_positive_loss(
        candidates[torch.arange(3), (positive + 1) % 4], candidates, positive, 0.2
    )
    assert float(at_positive) < float(loss) and float(at_positive) < float(at_negative)


def test_mask_tokens_noise_touches_only_real_tokens_and_never_empties_an_input():
    tokens = _tokens(4, length=10)
    kept = mask_tokens_noise(tokens, 0.0)
    assert torch.equal(kept["attention_mask"], tokens["attention_mask"])
    dropped = mask_tokens_noise(tokens, 1.0)  # every real token but the first leaves attention
    assert dropped["attention_mask"].sum(dim=1).tolist() == [1, 1, 1, 1]
    assert torch.equal(dropped["input_ids"], tokens["input_ids"])
    replaced = mask_tokens_noise(tokens, 1.0, mask_token_id=39)
    assert torch.equal(replaced["attention_mask"], tokens["attention_mask"])
    assert (replaced["input_ids"][:, 1:8] == 39).all() and (replaced["input_ids"][:, 8:] == 0).all()
    assert torch.equal(replaced["input_ids"][:, 0], tokens["input_ids"][:, 0])


def test_question_selection_leaves_out_copies_of_the_own_question():
    model = _model(pretrain_epochs=1)
    batch = _batch()
    for key in ("input_ids", "attention_mask"):  # clips 0 and 3 ask the same question
        batch["text"][key][3] = batch["text"][key][0]
    with torch.no_grad():
        logits = model.question_selection(batch, model.encode_frames(batch["video"]), {})
    assert logits.shape == (4, 4)
    assert logits[0, 3] == float("-inf") and logits[3, 0] == float("-inf")
    assert torch.isfinite(logits.diagonal()).all() and torch.isfinite(logits[1]).all()


def test_stages_pretraining_picks_questions_then_qa_adds_the_contrastive_term():
    batch = _batch()
    out = _model(pretrain_epochs=1).ssl_step(batch)  # epoch 0 < 1: question selection
    assert set(out) >= {"loss", "question_loss"} and "qa_loss" not in out
    torch.manual_seed(0)
    out = _model(contrastive_weight=0.5).ssl_step(batch)
    assert out["loss"].item() == pytest.approx(out["qa_loss"].item() + 0.5 * out["contrastive_loss"].item())
    without = _model(contrastive_weight=0.0).ssl_step(batch)
    assert "contrastive_loss" not in without
    assert without["loss"].item() == pytest.approx(without["qa_loss"].item())
    model = _model()
    model.ssl_step(batch)["loss"].backward()  # gradients reach both encoders
    text, video = model.encoders["text"].transformer, model.encoders["video"].backbone
    assert text.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    assert video.conv1.weight.grad.abs().sum() > 0


def test_subtitles_feed_the_text_stream_through_local_alignment():
    batch = _batch(b=2)
    batch["answer"] = torch.tensor([0, 2])
    batch["subtitles"] = _tokens(2, 3, seed=5)  # (B, S, L)
    batch["subtitle_spans"] = torch.tensor([[[0.0, 0.1], [0.2, 0.3], [5.0, 6.0]]]).repeat(2, 1, 1)
    batch["frame_times"] = torch.tensor([[0.0, 0.1, 0.2, 0.3]]).repeat(2, 1)
    local, plain = _model(), _model()
    with torch.no_grad():
        scores = local(batch)
        video_only = plain({k: v for k, v in batch.items() if k != "subtitles"})
        global_scores = _model(local_attention=False)(batch)
    assert scores.shape == (2, 3)
    assert not torch.allclose(scores, video_only)  # the text stream adds its scores
    assert not torch.allclose(scores, global_scores)  # local and global attention differ
    del batch["frame_times"]
    with pytest.raises(KeyError, match="frame_times"):
        local(batch)


def test_scorer_scores_every_candidate_and_needs_a_mask_with_sentences():
    scorer = TwoStreamQAScorer(text_dim=6, video_dim=10, dim=8, num_heads=2)
    scores, fused = scorer(torch.randn(2, 5, 6), torch.randn(2, 4, 10))
    assert scores.shape == (2, 5) and fused.shape == (2, 5, 8)
    with pytest.raises(ValueError, match="sentence_visible"):
        scorer(torch.randn(2, 5, 6), torch.randn(2, 4, 10), sentences=torch.randn(2, 3, 6))


def _qa_tokens(question: list[int], answers: list[list[int]]) -> tuple[dict, dict]:
    """Byte-tokenizer-like inputs: question ``[1, *q, 2]``, candidates ``[1, *q, 3, *a, 2]``, padded with 0."""
    rows = [[1, *question, 3, *a, 2] for a in answers]
    length = max(map(len, rows))
    ids = torch.tensor([[r + [0] * (length - len(r)) for r in rows]])  # (1, A, L)
    asked = torch.tensor([[1, *question, 2]])  # (1, Lq)
    return (
        {"input_ids": ids, "attention_mask": (ids > 0).long()},
        {"input_ids": asked, "attention_mask": torch.ones_like(asked)},
    )


def test_answer_token_mask_marks_the_separator_the_answer_and_the_closing_token():
    candidates, question = _qa_tokens([10, 11, 12], [[20, 21], [22]])
    slot = answer_token_mask(candidates, question)
    assert slot[0, 0].tolist() == [False] * 4 + [True] * 4
    assert slot[0, 1].tolist() == [False] * 4 + [True] * 3 + [False]  # padding is never the answer
    aligned = left_align(candidates["input_ids"], slot)
    assert aligned["input_ids"][0, 0].tolist() == [3, 20, 21, 2, 0, 0, 0, 0]
    assert aligned["attention_mask"][0, 1].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]


def test_the_answer_is_encoded_the_same_whatever_the_length_of_its_question():
    """Inside ``question + answer`` an answer's tokens sit at positions set by the question's length, so the
    same answer reads differently after every question; its own encoding does not."""
    model = _model()
    short, short_q = _qa_tokens([10, 11], [[20, 21], [22, 23]])
    long, long_q = _qa_tokens([10, 11, 12, 13, 14], [[20, 21], [22, 23]])
    with torch.no_grad():
        after_short = model.encode_candidates(short, answer_token_mask(short, short_q))  # (1, 2, 2D)
        after_long = model.encode_candidates(long, answer_token_mask(long, long_q))
    width = model.encoders["text"].num_features
    torch.testing.assert_close(after_short[..., width:], after_long[..., width:])
    assert not torch.allclose(after_short[..., :width], after_long[..., :width])  # the whole input differs
    assert not torch.allclose(after_short[0, 0, width:], after_short[0, 1, width:])  # answers differ


def test_frame_difference_makes_the_scores_depend_on_the_order_of_the_frames():
    batch = _batch()
    reversed_batch = {**batch, "video": batch["video"].flip(2)}
    plain, ordered = _model(), _model(in_chans=6, frame_difference=True)
    with torch.no_grad():
        # attention over a set of frames cannot tell a clip from its reverse (left from right)
        torch.testing.assert_close(plain(batch), plain(reversed_batch))
        assert not torch.allclose(ordered(batch), ordered(reversed_batch))
    with pytest.raises(UsageError, match="video_encoder_kwargs: frame_difference=True feeds 6 channels"):
        _model(frame_difference=True)


def test_frame_positions_let_the_scorer_read_the_order_of_the_frames():
    batch = _batch()
    reversed_batch = {**batch, "video": batch["video"].flip(2)}
    ordered = _model(frame_positions=True)
    with torch.no_grad():
        assert not torch.allclose(ordered(batch), ordered(reversed_batch))
    positions = sinusoidal_positions(8, 16)
    assert positions.shape == (8, 16)
    torch.testing.assert_close(positions[0], torch.tensor([0.0] * 8 + [1.0] * 8))  # sin 0, cos 0
    assert torch.cdist(positions, positions).fill_diagonal_(1.0).min() > 0.5  # every frame told apart


def test_the_text_only_model_never_reads_the_video():
    model = _model(text_only=True)
    batch = _batch()
    with torch.no_grad():
        torch.testing.assert_close(model(batch), model({**batch, "video": torch.zeros_like(batch["video"])}))
    model.ssl_step(batch)["loss"].backward()
    assert all(p.grad is None for p in model.encoders["video"].parameters())
    assert model.encoders["text"].transformer.embeddings.word_embeddings.weight.grad.abs().sum() > 0


def test_qa_clips_keep_the_whole_frame_and_its_orientation_in_training(tmp_path):
    """A flip turns "moves to the left" into right and clockwise into counterclockwise, and a crop can cut
    out the object asked about: the training clips of QA items are the whole frames, as in evaluation."""
    datamodule = MultipleChoiceQADataModule(root=str(tmp_path), video=True, size=8)
    frames = torch.zeros(2, 8, 8, 3, dtype=torch.uint8)  # (T, H, W, C)
    frames[:, 1:3, 0:2] = 255  # an object in the top-left corner
    evaluated = datamodule._transform("test")(frames)  # (C, T, H, W)
    torch.manual_seed(0)
    for _ in range(8):  # flips and crops are random: every draw must keep the frame as it is
        torch.testing.assert_close(datamodule._transform("train")(frames), evaluated)
    assert evaluated[:, :, 1:3, 0:2].mean() > evaluated[:, :, 1:3, 6:8].mean()  # still on the left


@pytest.mark.parametrize(
    "answer_idx, message",
    [
        (5, r"qa.jsonl, line 2: answer_idx 5 is out of range for 3 answers"),
        (-1, "out of range"),
        ("1", "integer"),
    ],
)
def test_qa_items_with_a_bad_answer_index_name_the_file_and_line(tmp_path, answer_idx, message):
    item = {"split": "train", "path": "videos/a.mp4", "question": "Q?", "answers": ["x", "y", "z"]}
    lines = [json.dumps({**item, "answer_idx": 0}), json.dumps({**item, "answer_idx": answer_idx})]
    (tmp_path / "qa.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(ManifestError, match=message):
        synthmotion_qa_records(tmp_path, "train")
    (tmp_path / "qa.jsonl").write_text(lines[0] + "\n{\n")
    with pytest.raises(ManifestError, match="line 2: invalid JSON"):
        synthmotion_qa_records(tmp_path, "train")


def test_the_synthmotion_recipe_reads_frames_with_a_small_convnet_and_spatial_max_pooling():
    """ResNet-10 trained from scratch through the QA scores stays at chance on SynthMotion's 32 px frames; the
    recipe's per-frame encoder is the small convnet whose spatial max keeps the small moving object."""
    recipe = yaml.safe_load(
        (Path(__file__).parents[2] / "configs" / "videoqa" / "synthmotion.yaml").read_text()
    )
    model = VideoQA(**recipe["model"]["init_args"])
    video = model.encoders["video"]
    assert isinstance(video.backbone, SmallConvNet) and video.backbone.spatial_pool == "max"
    assert video.in_chans == 6 and model.hparams.frame_difference  # each frame with its difference
    assert video.backbone.saliency is not None  # where the object is, frame by frame: its trajectory
    assert model.scorer.frame_positions  # the frames in order, not as a set
