"""Learning signal of XDC on SynthMotion: pre-train for a few CPU minutes through the recipe's settings,
then score the frozen encoders against the same encoders untrained.

SynthMotion's audio carries the motion (a click at each wall hit or quarter turn) and the object's
shape (a pitch per shape). After pre-training, on the test split (centre clip, eval transform):

* linear-probe and kNN top-1 of the frozen *video* features on the motion classes;
* audio→video retrieval R@1: each test clip's audio must find its own video among all test videos.
  XDC has no joint embedding; its scores are ``log p(audio cluster of a | video v)`` under the video
  classifier (:meth:`zoo.methods.xdc.XDC.audio_to_video_scores`);
* NMI of XDC's clusters with the classes: the clusters of the last training clustering (train split),
  and k-means (as many clusters as XDC's) on the test split's video and audio features.

The untrained row is the same initialisation, clustered once (one k-means of its features, as XDC's
first epoch does) so that its classifier scores are defined; its classifiers are untrained.

    python benchmarks/av_learning_signal_xdc.py --epochs 20

prints a markdown table and writes ``docs/benchmarks/av_learning_signal_xdc.md``.
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
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (
    StepProgress,
    add_run_arguments,
    cpu_trainer,
    eval_datamodule,
    probe_scores,
    timed_fit,
    write_report,
)

from zoo.data.datamodule import VideoDataModule
from zoo.eval.clustering import cluster_features
from zoo.eval.retrieval import ranks_to_metrics
from zoo.methods.xdc import XDC

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "configs" / "xdc" / "synthmotion.yaml"
OUT = ROOT / "docs" / "benchmarks" / "av_learning_signal_xdc.md"


@torch.no_grad()
def _embed_split(model: XDC, loader) -> dict[str, torch.Tensor]:
    """Video and audio features (N, F), labels and the has-audio flag of a whole split, in eval mode."""
    was_training = model.training
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {"video": [], "audio": [], "label": [], "has_audio": []}
    for batch in loader:
        parts["video"].append(model.embed("video", batch["video"]))
        parts["audio"].append(model.embed("audio", batch["audio"]))
        parts["label"].append(batch["label"])
        parts["has_audio"].append(batch["audio_mask"].any(dim=-1))
    model.train(was_training)
    return {k: torch.cat(v) for k, v in parts.items()}


def _instance_r_at_1(scores: torch.Tensor) -> float:
    """R@1 (percent) of the diagonal: query i's own item must rank first (ties count against it)."""
    own = scores.diagonal()[:, None]  # (N, 1)
    ranks = 1 + (scores > own).sum(dim=1) + ((scores == own).sum(dim=1) - 1)  # pessimistic on ties
    return ranks_to_metrics(ranks, ks=(1,))["R@1"]


def _xdc_scores(model: XDC, train_loader, test_loader, num_classes: int, train_clusters) -> dict[str, float]:
    scores = probe_scores(model.encoders["video"], train_loader, test_loader, num_classes, knn_k=20)
    test = _embed_split(model, test_loader)
    keep = test["has_audio"]
    model.eval()
    retrieval = model.audio_to_video_scores(test["audio"][keep], test["video"][keep])  # (N, N)
    k = model.hparams.num_clusters
    return {
        **scores,
        "a2v_r1": _instance_r_at_1(retrieval),
        "train_nmi_audio_clusters": train_clusters.get("audio_clusters_nmi", float("nan")),
        "train_nmi_video_clusters": train_clusters.get("video_clusters_nmi", float("nan")),
        "test_nmi_video": cluster_features(test["video"], test["label"], num_clusters=k)["nmi"],
        "test_nmi_audio": cluster_features(test["audio"][keep], test["label"][keep], num_clusters=k)["nmi"],
    }


def _first_clustering(model: XDC, datamodule: VideoDataModule) -> dict[str, float]:
    """One clustering of the untrained encoders over the training split (XDC's first step)."""
    data = _embed_split(model, datamodule.train_dataloader())
    index = torch.arange(len(data["video"]))
    for buffer in model.label_buffers.values():
        buffer.resize(len(index))
    model.on_dataset_pass({"index": index, **data})
    return dict(model.cluster_scores)


def run(recipe: dict[str, Any], epochs: int, seed: int, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    L.seed_everything(seed, workers=True, verbose=False)
    model_args = dict(recipe["model"]["init_args"], online_probe=False)
    data_args = dict(recipe["data"]["init_args"], seed=seed)
    datamodule = VideoDataModule(**data_args)
    datamodule.prepare_data()
    datamodule.setup("fit")
    model = XDC(**model_args)
    untrained = copy.deepcopy(model)
    trainer = cpu_trainer(
        max_epochs=epochs,
        log_every_n_steps=8,
        callbacks=[StepProgress(every=8)],
    )
    minutes = timed_fit(trainer, model, datamodule)
    untrained_clusters = _first_clustering(untrained, datamodule)

    eval_dm = eval_datamodule(data_args)
    eval_dm.setup("validate")
    eval_dm.setup("test")
    loaders = (eval_dm.val_dataloader(), eval_dm.test_dataloader())
    num_classes = datamodule.num_classes
    return {
        "minutes": minutes,
        "steps": trainer.global_step,
        "epochs": trainer.current_epoch,
        "trained": _xdc_scores(model, *loaders, num_classes, model.cluster_scores),
        "untrained": _xdc_scores(untrained, *loaders, num_classes, untrained_clusters),
        "chance": 100 / num_classes,
        "test_size": len(eval_dm.test_dataloader().dataset),
    }


COLUMNS = [
    ("linear top-1", "linear_top1", ".1f"),
    ("kNN top-1", "knn_top1", ".1f"),
    ("audio→video R@1", "a2v_r1", ".1f"),
    ("NMI, XDC audio clusters (train)", "train_nmi_audio_clusters", ".3f"),
    ("NMI, XDC video clusters (train)", "train_nmi_video_clusters", ".3f"),
    ("NMI, k-means of video features (test)", "test_nmi_video", ".3f"),
    ("NMI, k-means of audio features (test)", "test_nmi_audio", ".3f"),
]


def markdown_table(result: dict[str, Any]) -> str:
    head = "| encoders | " + " | ".join(name for name, _, _ in COLUMNS) + " |\n"
    head += "|---" * (len(COLUMNS) + 1) + "|\n"
    rows = ""
    for label, key in (("XDC, pre-trained", "trained"), ("same, untrained", "untrained")):
        values = " | ".join(format(result[key][k], fmt) for _, k, fmt in COLUMNS)
        rows += f"| {label} | {values} |\n"
    return head + rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    add_run_arguments(parser, OUT, synth_root=False)
    args = parser.parse_args()
    recipe = yaml.safe_load(RECIPE.read_text())
    result = run(recipe, args.epochs, args.seed, args.threads)
    table = markdown_table(result)
    print(table)
    model, data = recipe["model"]["init_args"], recipe["data"]["init_args"]
    settings = (
        f"Settings: the recipe `configs/xdc/synthmotion.yaml` ({model['video_encoder']} "
        f"{model.get('video_encoder_kwargs', {})} video encoder, {model['audio_encoder']} audio encoder, "
        f"{model['num_clusters']} clusters per modality, re-clustered every epoch; {model['optimizer']} lr "
        f"{model['lr']}; clips of {data['num_frames']} frames, stride {data['stride']:g}, {data['size']} px, "
        f"{data['n_mels']}-band log-mel of {data['audio_seconds']:g} s; batch {data['batch_size']}) for "
        f"{result['epochs']} epochs = {result['steps']} steps in {result['minutes']:.1f} min, seed {args.seed}, "
        f"{args.threads} torch thread(s). SynthMotion defaults: 8 motion classes, 256 train clips (scene bias "
        f"0.8), {result['test_size']} test clips. Linear probe = L-BFGS logistic regression (weight decay 1e-3) "
        "on standardised train-split features; kNN = 20 neighbours, cosine; both scored on the test split "
        f"(chance {result['chance']:.1f}%). Audio→video R@1 over the {result['test_size']} test clips (chance "
        f"{100 / result['test_size']:.1f}%; ties ranked pessimistically). NMI: arithmetic normalisation."
    )
    machine = f"{platform.machine()}, torch {torch.__version__}"
    command = f"python benchmarks/av_learning_signal_xdc.py --epochs {args.epochs}"
    write_report(
        args.out,
        "# Learning signal: XDC on SynthMotion (CPU)\n\n"
        f"Generated by `{command}` ({machine}; 2 CPU cores shared with other jobs).\n\n"
        f"{table}\n{settings}\n",
    )


if __name__ == "__main__":
    main()
