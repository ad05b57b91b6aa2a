"""Learning signal of SeLaVi on SynthMotion: pre-train for a few CPU minutes, then score frozen features
against the same encoders untrained.

Rows: linear-probe and kNN top-1 of the frozen video features on the motion classes (test split,
features of the train split to fit), audio→video retrieval R@1 on the test split, and the NMI of the
clusters with the classes — of the self-labels on the train split (head 0, what SeLaVi reports) and of
the predicted clusters (head 0, argmax of ``p_video ⊙ p_audio``) on the test split. SeLaVi's two
encoders do not share an embedding space; what they share is the heads' cluster probabilities, so the
retrieval compares the concatenated per-head softmax of the audio with that of the video (cosine).

    python benchmarks/av_learning_signal_selavi.py --budget-minutes 4

prints a markdown table and writes ``docs/benchmarks/av_learning_signal_selavi.md``.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.fabric.utilities.apply_func import move_data_to_device

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import StepProgress, cpu_trainer, eval_datamodule, probe_scores, timed_fit, write_report

from zoo.data.datamodule import VideoDataModule
from zoo.eval.clustering import clustering_scores
from zoo.eval.retrieval import clip_retrieval
from zoo.methods.selavi import SeLaVi

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "av_learning_signal_selavi.md"


@torch.no_grad()
def _cross_modal(model: SeLaVi, loader) -> dict[str, float]:
    """Audio→video R@1 on cluster probabilities, and NMI of head-0 predicted clusters with the classes."""
    model.eval()
    video_probs, audio_probs, clusters, labels = [], [], [], []
    for batch in loader:
        batch = move_data_to_device(batch, model.device)
        sound = batch["audio_mask"].any(-1)
        v_logits, a_logits = model(batch["video"], batch["audio"])  # (H, B, K)
        p_video, p_audio = F.softmax(v_logits, -1), F.softmax(a_logits, -1)
        p_audio = torch.where(sound[None, :, None], p_audio, p_video)  # silent clips: video alone
        video_probs.append(p_video.permute(1, 0, 2).flatten(1))
        audio_probs.append(p_audio.permute(1, 0, 2).flatten(1))
        clusters.append((p_video[0] * p_audio[0]).argmax(-1))
        labels.append(batch["label"])
    video, audio, labels = torch.cat(video_probs), torch.cat(audio_probs), torch.cat(labels)
    identity = torch.arange(len(labels))  # a query's match is its own clip
    return {
        "a2v_r1": clip_retrieval(audio, identity, video, identity, ks=(1,))["R@1"],
        "test_nmi": clustering_scores(torch.cat(clusters), labels)["nmi"],
    }


def run_selavi_learning_signal(
    model_kwargs: dict[str, Any],
    datamodule_kwargs: dict[str, Any],
    max_steps: int,
    budget: float,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Pre-train SeLaVi for ``max_steps`` (its clustering schedule spans them; stopped after ``budget``
    minutes at the latest), then score the trained and the untrained encoders.

    Returns ``{"steps", "minutes", "epochs", "clusterings", "selflabel_nmi", "trained", "untrained",
    "chance"}`` with accuracies and R@1 in percent.
    """
    torch.set_num_threads(1)
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = VideoDataModule(**datamodule_kwargs)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = SeLaVi(**model_kwargs)
    untrained = copy.deepcopy(model)
    trainer = cpu_trainer(
        max_steps=max_steps,
        max_epochs=-1,
        max_time={"seconds": int(budget * 60)},
        log_every_n_steps=5,
        callbacks=[StepProgress(10)],
    )
    minutes = timed_fit(trainer, model, datamodule)
    eval_dm = eval_datamodule(datamodule_kwargs)
    eval_dm.setup("validate")
    eval_dm.setup("test")
    train_loader, test_loader = eval_dm.val_dataloader(), eval_dm.test_dataloader()
    num_classes = datamodule.num_classes
    rows = {}
    for name, net in (("trained", model), ("untrained", untrained)):
        rows[name] = {
            **probe_scores(net.encoders["video"], train_loader, test_loader, num_classes, 20),
            **_cross_modal(net, test_loader),
        }
    return {
        "steps": trainer.global_step,
        "minutes": minutes,
        "epochs": trainer.global_step / max(1, trainer.num_training_batches),
        "clusterings": model.solves_done,
        "selflabel_nmi": float(trainer.callback_metrics.get("train/selflabel_nmi", float("nan"))),
        "trained": rows["trained"],
        "untrained": rows["untrained"],
        "chance": 100 / num_classes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=160, help="pre-training steps (the schedule spans them)")
    parser.add_argument("--budget-minutes", type=float, default=6.0, help="stop training after this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    model_kwargs = dict(  # configs/selavi/synthmotion.yaml
        video_encoder="r3d_tiny",
        video_encoder_kwargs={"frame_difference": True},
        audio_encoder="resnet9_audio",
        num_clusters=8,
        heads=10,
        head_hidden_dim=128,
        head_groups=2,
        num_solves=12,
        bn_warmup_batches=4,
        optimizer="adamw",
        lr=2e-3,
        weight_decay=1e-4,
        warmup_epochs=1,
        online_probe=False,
    )
    datamodule_kwargs = dict(
        num_frames=8,
        stride=4.0,
        size=32,
        audio=True,
        audio_front_end={
            "kind": "log_mel",
            "sample_rate": 16000,
            "window": 400,
            "hop": 320,
            "n_fft": 512,
            "n_filters": 40,
            "normalize": "per_sample",
        },
        audio_window={"seconds": 2.0},
        batch_size=32,
        num_workers=1,
        seed=args.seed,
    )
    r = run_selavi_learning_signal(
        model_kwargs, datamodule_kwargs, args.steps, args.budget_minutes, seed=args.seed
    )
    t, u = r["trained"], r["untrained"]
    table = (
        "| method | encoders | steps | epochs | train time (min) | clusterings | linear top-1 | kNN top-1 "
        "| audio→video R@1 | NMI self-labels (train) | NMI clusters (test) | untrained linear top-1 "
        "| untrained kNN top-1 | untrained audio→video R@1 | untrained NMI clusters (test) | chance |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"| SeLaVi | r3d_tiny (residual frames) + resnet9_audio | {r['steps']} | {r['epochs']:.1f} "
        f"| {r['minutes']:.1f} | {r['clusterings']} | {t['linear_top1']:.1f} | {t['knn_top1']:.1f} "
        f"| {t['a2v_r1']:.1f} | {100 * r['selflabel_nmi']:.1f} | {100 * t['test_nmi']:.1f} "
        f"| {u['linear_top1']:.1f} | {u['knn_top1']:.1f} | {u['a2v_r1']:.1f} | {100 * u['test_nmi']:.1f} "
        f"| {r['chance']:.1f} |\n"
    )
    print(table)
    settings = (
        "Settings: the recipe of `configs/selavi/synthmotion.yaml` — r3d_tiny on residual frames (8 frames, "
        "stride 4, 32 px) and ResNet-9 over a 40-band log-mel of the clip's 2 s (per-sample normalised); "
        "10 heads per modality of K = 8 clusters (hidden 128), λ 20, Gaussian cluster sizes, modality "
        "alignment at the first clustering, 2 head groups, 12 schedule points (11 clusterings, denser early), "
        "4 BatchNorm warm-up batches; AdamW lr 2e-3, weight decay 1e-4, 1 warm-up epoch then cosine; batch 32, "
        "1 loader worker, 1 torch thread. SynthMotion: 8 motion classes, 256 train / 96 test clips, train "
        "scene bias 0.8. Evaluation on frozen features (centre clip, eval transform): linear probe and kNN "
        "as in `benchmarks/ssl_learning_signal.py` (test split); audio→video R@1: each test clip's audio "
        "against the 96 test videos, on the concatenated per-head cluster probabilities (cosine); NMI "
        "(arithmetic, percent) of head 0: the self-labels of the train split at the last clustering, and "
        "the argmax of p_video ⊙ p_audio on the test split. Untrained: the same model before training "
        "(no self-labels). Chance: 12.5% top-1, 1.0% R@1 (1/96)."
    )
    text = (
        "# Learning signal: SeLaVi on SynthMotion\n\n"
        "Written by `python benchmarks/av_learning_signal_selavi.py`"
        f" (`--steps {args.steps} --budget-minutes {args.budget_minutes:g}`) on {platform.machine()} CPU, "
        f"torch {torch.__version__}.\n\n{table}\n{settings}\n"
    )
    write_report(args.out, text)


if __name__ == "__main__":
    main()
