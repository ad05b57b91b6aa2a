"""Learning signal of GDT (and STiCA) on SynthMotion: pre-train for a few CPU minutes, then score the
frozen video features (linear probe, kNN) and the audio→video retrieval of the joint embedding, against
the same encoders untrained.

Uses :func:`ssl_learning_signal.run_learning_signal` for the pre-training and the probe/kNN scores; adds
audio→video R@1 on the test split: each test clip's audio (its aligned window, the method's front-end)
queries the test clips' video embeddings and must find its own clip first (chance = 1/N).

    python benchmarks/av_learning_signal_gdt.py --budget-minutes 3

prints a markdown table and writes ``docs/benchmarks/av_learning_signal_gdt.md``.
"""

from __future__ import annotations

import argparse
import copy
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import eval_datamodule, write_report
from ssl_learning_signal import run_learning_signal

from zoo.eval.retrieval import clip_retrieval
from zoo.methods.base import SSLMethod

OUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "av_learning_signal_gdt.md"


@torch.no_grad()
def audio_to_video_r1(model: SSLMethod, loader) -> float:
    """R@1 (percent) of each clip's audio embedding retrieving its own clip's video embedding."""
    model.eval()
    videos, audios = [], []
    for batch in loader:
        videos.append(model.project("video", batch["video"])[1])
        audios.append(model.project("audio", batch["audio"])[1])
    video, audio = torch.cat(videos), torch.cat(audios)
    ids = torch.arange(len(video))
    return clip_retrieval(audio, ids, video, ids, ks=(1,))["R@1"]


def av_learning_signal(
    method_factory: Callable[[], SSLMethod], datamodule_kwargs: dict[str, Any], budget: float, seed: int = 0
) -> dict[str, Any]:
    """:func:`run_learning_signal` plus audio→video R@1 of the trained and the untrained model."""
    built: list[SSLMethod] = []

    def factory() -> SSLMethod:
        model = method_factory()
        built.extend([model, copy.deepcopy(model)])  # the trained one and its untrained twin
        return model

    result = run_learning_signal(factory, datamodule_kwargs, budget, seed=seed)
    trained, untrained = built
    test = eval_datamodule(datamodule_kwargs)
    test.setup("test")
    result["trained"]["a2v_r1"] = audio_to_video_r1(trained, test.test_dataloader())
    result["untrained"]["a2v_r1"] = audio_to_video_r1(untrained, test.test_dataloader())
    result["retrieval_chance"] = 100 / len(test.test_dataloader().dataset)
    return result


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| method | video encoder | train time (min) | steps | epochs | linear top-1 | kNN top-1 | a→v R@1 "
        "| untrained linear | untrained kNN | untrained a→v R@1 | chance (class / retrieval) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    return head + "".join(
        f"| {r['method']} | {r['encoder']} | {r['minutes']:.1f} | {r['steps']} | {r['epochs']:.1f} "
        f"| {r['trained']['linear_top1']:.1f} | {r['trained']['knn_top1']:.1f} | {r['trained']['a2v_r1']:.1f} "
        f"| {r['untrained']['linear_top1']:.1f} | {r['untrained']['knn_top1']:.1f} "
        f"| {r['untrained']['a2v_r1']:.1f} | {r['chance']:.1f} / {r['retrieval_chance']:.1f} |\n"
        for r in rows
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget-minutes", type=float, default=3.0, help="pre-training budget per method")
    parser.add_argument("--methods", nargs="+", choices=["gdt", "stica"], default=["gdt"])
    parser.add_argument("--hypothesis", type=int, default=2, help="GDT hypothesis (1..9)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    datamodule_kwargs = dict(
        num_frames=8,
        stride=4.0,
        size=32,
        audio=True,
        audio_preset="gdt",
        synth={"audio": True},
        batch_size=args.batch_size,
        num_workers=1,
        seed=args.seed,
    )
    common = dict(optimizer="adamw", lr=2e-3, weight_decay=1e-4, warmup_epochs=1, online_probe=False)
    factories: dict[str, Callable[[], SSLMethod]] = {}
    if "gdt" in args.methods:
        from zoo.methods.gdt import GDT

        factories["gdt"] = lambda: GDT(
            video_encoder="r3d_tiny",
            video_encoder_kwargs={"frame_difference": True},
            audio_encoder="resnet9_audio",
            hypothesis=args.hypothesis,
            **common,
        )
    if "stica" in args.methods:
        from zoo.methods.stica import STiCA

        factories["stica"] = lambda: STiCA(
            video_encoder="r3d_tiny",
            video_encoder_kwargs={"frame_difference": True, "stem_stride": 1},  # a (2, 4, 4) map to crop
            audio_encoder="resnet9_audio",
            **common,
        )
    rows = []
    for name, factory in factories.items():
        data = dict(datamodule_kwargs)
        if name == "stica":  # two augmentations of one 16-frame clip
            data.update(
                num_frames=16,
                stride=2.0,
                num_views=2,
                view_clips="same",
                train_transform={"name": "simclr", "scale": (0.3, 1.0), "strength": 0.5},
            )
        rows.append(av_learning_signal(factory, data, args.budget_minutes, seed=args.seed))
        print(markdown_table(rows[-1:]), flush=True)
    table = markdown_table(rows)
    print(table)
    settings = (
        f"Settings: GDT hypothesis {args.hypothesis}, r3d_tiny on residual frames + ResNet-9 audio, MLP heads "
        "512-256 (dropout 0.3), t 0.07; AdamW lr 2e-3, weight decay 1e-4, 1 warm-up epoch then cosine over "
        "the calibrated number of steps; SynthMotion with audio (8 motion classes, 256 train / 96 test clips), "
        f"clips of 8 frames, stride 4, 32 px, GDT audio front-end (1 s, 40 log filterbanks); batch "
        f"{args.batch_size}; 1 loader worker, 1 torch thread. Linear probe and kNN (k 20) on frozen video "
        "features (centre clip) of the test split; a→v R@1: each test clip's audio embedding against all "
        "test clips' video embeddings (the heads' joint space). STiCA: the same encoders with stem stride 1, "
        "16-frame clips (stride 2) so that the map is (2, 4, 4); two augmentations (simclr preset, scale 0.3-1, "
        "strength 0.5) of one clip; 2 large + 4 small spatial, 2 large + 1 small temporal feature crops; "
        "transformer pooling 2 layers; t 0.5 (crops), 0.1 (audio-visual), α 0.5; the GDT audio front-end (STiCA's "
        "257-band 2 s spectrogram makes ResNet-9 the dominant cost on a CPU)."
    )
    machine = f"{platform.machine()}, torch {torch.__version__}, 1 thread"
    command = f"python benchmarks/av_learning_signal_gdt.py --budget-minutes {args.budget_minutes:g}"
    write_report(
        args.out,
        "# Learning signal: GDT and STiCA on SynthMotion (CPU)\n\n"
        f"Generated by `{command} --methods {' '.join(args.methods)}` ({machine}; 2 CPU cores shared with "
        "other jobs, so step counts vary between runs).\n\n"
        f"{table}\n{settings}\n",
    )


if __name__ == "__main__":
    main()
