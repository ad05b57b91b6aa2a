"""Helpers shared by the tests: a tiny backbone, several gloo ranks on this machine, a tiny run of a recipe, tiny
dataset layouts (MS-TCN feature sequences, image–text pairs, SynthMotion)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml
from PIL import Image
from torch import nn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, worker: Callable[..., None], args: tuple[Any, ...]) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world,
        timeout=timedelta(seconds=30),
    )
    torch.set_num_threads(1)
    try:
        worker(rank, *args)
        dist.barrier()  # no rank tears its connections down while the other still uses them
    finally:
        dist.destroy_process_group()


def run_ranks(worker: Callable[..., None], *args: Any, world: int = 2, timeout_s: float = 60) -> None:
    """Run ``worker(rank, *args)`` on ``world`` CPU processes in one gloo group; fail after ``timeout_s``.

    ``worker`` must be a module-level function (it is pickled into the spawned processes).
    """
    context = mp.spawn(_rank_main, args=(world, free_port(), worker, args), nprocs=world, join=False)
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            raise TimeoutError(f"{world} gloo workers did not finish within {timeout_s}s")


def tiny_fit_override(tmp_path: Path, data_args: dict[str, Any], max_steps: int = 2) -> Path:
    """A config file that shrinks a shipped recipe to ``max_steps`` on tiny data, checkpointing to
    ``tmp_path / "ckpt" / "last.ckpt"``; pass it after the recipe: ``--config recipe --config this``."""
    override = {
        "trainer": {
            "max_epochs": 1,
            "max_steps": max_steps,
            "limit_val_batches": 1,
            "default_root_dir": str(tmp_path / "run"),
            "logger": False,
            "enable_progress_bar": False,
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": {"dirpath": str(tmp_path / "ckpt"), "save_last": True},
                }
            ],
        },
        "data": {"init_args": data_args},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(override))
    return path


class TinyNet(nn.Module):
    """A two-layer classifier with the backbone API, for registry and loading tests."""

    classifier_keys = ("head.",)

    def __init__(self, num_classes: int = 3, width: int = 8):
        super().__init__()
        self.num_features = width
        self.body = nn.Linear(4, width)
        self.head = nn.Linear(width, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.body(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)


ACTIONS = ("SIL", "take_cup", "pour_milk", "stir")


def frame_labels(length: int, seed: int) -> list[str]:
    """Ordered sub-actions in runs: SIL, then three actions, each a random share of the frames."""
    cuts = np.sort(np.random.default_rng(seed).choice(np.arange(1, length), size=3, replace=False))
    return [ACTIONS[int(np.searchsorted(cuts, t, side="right"))] for t in range(length)]


def features_of(length: int, dim: int, seed: int) -> np.ndarray:
    """(T, D) features whose column 0 is the frame number (so any reordering shows)."""
    features = np.random.default_rng(seed).normal(size=(length, dim)).astype(np.float32)
    features[:, 0] = np.arange(length)
    return features


def make_mstcn(root: Path, lengths: dict[str, int], dim: int = 6) -> Path:
    """Breakfast / 50 Salads as MS-TCN ships them: features (D, T) .npy, groundTruth/*.txt, mapping.txt."""
    (root / "features").mkdir(parents=True)
    (root / "groundTruth").mkdir()
    (root / "mapping.txt").write_text("".join(f"{i} {a}\n" for i, a in enumerate(ACTIONS)))
    for k, (name, length) in enumerate(lengths.items()):
        np.save(root / "features" / f"{name}.npy", features_of(length, dim, k).T)
        (root / "groundTruth" / f"{name}.txt").write_text("\n".join(frame_labels(length, k)) + "\n")
    return root


def make_image_text(root: Path) -> Path:
    """Three plain-colour images (20x16) with captions and labels of four classes (`classes.txt`): pairs.jsonl."""
    root.mkdir(parents=True, exist_ok=True)
    colours = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}
    for name, rgb in colours.items():
        Image.new("RGB", (20, 16), rgb).save(root / f"{name}.png")
    (root / "classes.txt").write_text("sky\ngrass\nwater\nsun\n")
    items = [
        {"image": "red.png", "text": "a red sunset", "labels": ["sky", "sun"]},
        {"image": "green.png", "text": "green grass", "labels": ["grass"]},
        {"image": "blue.png", "text": "blue water under the sky", "labels": ["water", "sky"]},
    ]
    (root / "pairs.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    return root / "pairs.jsonl"


def tiny_bert(**fields: Any) -> dict[str, Any]:
    """A ``transformers`` BERT config of one layer of width 16 over byte-level ids (pad 0), built locally;
    ``fields`` override any of it."""
    return {
        "model_type": "bert",
        "vocab_size": 260,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "max_position_embeddings": 128,
        "pad_token_id": 0,
        **fields,
    }


def tiny_cmd(**fields: Any) -> dict[str, Any]:
    """``CMD`` arguments of a tiny model (the r3d_tiny_cmd clip network, 4 frames at 32 px, a one-layer
    transformer of width 32); ``fields`` override any of them."""
    return {
        "encoder": "r3d_tiny_cmd",
        "motion_encoder_kwargs": {"widths": [16, 32, 48, 64]},
        "clip_frames": 4,
        "clip_size": 32,
        "future_frames": 4,
        "hard_negatives": 1,
        "hidden_dim": 32,
        "num_heads": 4,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "head_hidden_dim": 64,
        "embed_dim": 16,
        "online_probe": False,
        **fields,
    }


def tiny_synth(**fields: Any) -> dict[str, Any]:
    """``SynthMotionConfig`` fields of a tiny set: 32 px clips of 8 frames, and none of the long videos, re-ID
    tracklets, QA items or sound unless ``fields`` ask for them (``fields`` override every default)."""
    return {
        "size": 32,
        "num_frames": 8,
        "long_videos": 0,
        "reid_identities": 0,
        "qa_per_clip": 0,
        "audio": False,
        **fields,
    }


def generate_synth(root: Path, synth: dict[str, Any]) -> Path:
    """Generate the SynthMotion set of ``synth`` (config fields, e.g. :func:`tiny_synth`'s) at ``root``, in this
    process, without a progress bar; returns ``root``."""
    from zoo.data.synthmotion import SynthMotionConfig, generate

    return generate(root, SynthMotionConfig(**synth), progress=False, workers=1)
