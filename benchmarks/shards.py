"""Clips/s of the training loader reading tar shards against the same videos read as files, side by side.

Videos: a SynthMotion set (real H.264 with a sound track), written once as files and once as tar shards
(``zoo data shard``: the same bytes). Every row is ``VideoDataModule.train_dataloader()`` with the same clip
geometry and the ``train`` preset; only where the bytes come from differs:

* files — the manifest's files on disk (map-style dataset, shuffled by the sampler);
* shards, local — the shards on disk, streamed through the shuffle buffer and decoded in the workers;
* shards, HTTP — the same shards served by a threaded ``http.server`` on 127.0.0.1 (standing in for an
  object store; no network latency or bandwidth limit, so this measures the protocol and copying).

Wall-clock time over ``--epochs`` epochs after one warm-up epoch (worker start-up, page cache), rows timed
in turn. Run: ``python benchmarks/shards.py`` (a few minutes on 2 cores). Writes docs/benchmarks/shards.md.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import http.server
import os
import platform
import tempfile
import threading
import time
from pathlib import Path

import torch

from zoo.data.datamodule import VideoDataModule
from zoo.data.shards import ShardStream, write_shards
from zoo.data.synthmotion import SynthMotionConfig, generate


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request
        pass


@contextlib.contextmanager
def http_server(folder: Path):
    """A threaded HTTP server on 127.0.0.1 serving ``folder``; yields its URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def clips_per_second(module: VideoDataModule, epochs: int) -> float:
    module.setup("fit")
    loader = module.train_dataloader()
    for _ in loader:  # warm-up epoch
        pass
    clips, started = 0, time.perf_counter()
    for epoch in range(1, epochs + 1):
        streamed = isinstance(loader.dataset, ShardStream)  # a stream has no sampler to carry the epoch
        (loader.dataset if streamed else loader.sampler).set_epoch(epoch)
        for batch in loader:
            clips += len(batch["index"])
    return clips / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=128, help="SynthMotion frame side")
    parser.add_argument("--frames", type=int, default=48, help="frames per video")
    parser.add_argument("--per-class", type=int, default=8, help="training videos per class (8 classes)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="docs/benchmarks/shards.md")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = generate(
            Path(tmp) / "synth",
            SynthMotionConfig(
                size=args.size,
                num_frames=args.frames,
                train_per_class=args.per_class,
                val_per_class=1,
                test_per_class=1,
                long_videos=0,
                reid_identities=0,
                qa_per_clip=0,
            ),
            progress=False,
        )
        clip = dict(num_frames=8, stride=2, size=64, batch_size=8, seed=0)
        files = VideoDataModule(synth_root=str(root), **clip, num_workers=0)
        records = files.records("train")
        index = write_shards(records, Path(tmp) / "shards", "train", max_size=200_000, progress=False)
        num_shards = len(list(index.parent.glob("train-*.tar")))
        video_mb = sum(r.path.stat().st_size for r in records.records) / 1e6
        rows = []
        with http_server(index.parent) as url:
            for workers in sorted({0, args.workers}):
                sources = [
                    ("files", dict(synth_root=str(root))),
                    ("shards, local", dict(shards=str(index))),
                    ("shards, HTTP", dict(shards=f"{url}/train.index.json")),
                ]
                for name, source in sources:
                    module = VideoDataModule(**source, **clip, num_workers=workers, persistent_workers=False)
                    rate = clips_per_second(module, args.epochs)
                    rows.append((name, workers, rate))
                    print(f"{name:14s} workers={workers}: {rate:7.1f} clips/s", flush=True)

    lines = [
        "# Streaming from shards vs files",
        "",
        "Written by `python benchmarks/shards.py` (see its docstring for what each row measures).",
        "",
        f"{len(records.records)} SynthMotion training videos ({args.size} px, {args.frames} frames, H.264 + AAC, "
        f"{video_mb:.1f} MB) in {num_shards} shards; clips of 8 frames (stride 2), `train` preset at 64 px, "
        f"batches of 8; {args.epochs} timed epochs after a warm-up one.",
        "",
        "| source | workers | clips/s | vs files |",
        "|---|---:|---:|---:|",
    ]
    for name, workers, rate in rows:
        base = next(r for n, w, r in rows if n == "files" and w == workers)
        lines.append(f"| {name} | {workers} | {rate:.1f} | {rate / base:.2f} |")
    lines += [
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs (shared), torch "
        f"{torch.__version__}. Wall-clock, one run; the HTTP server runs in the benchmark's process.",
        "",
        "A file's packet scan (frame count, keyframes) is cached by path, size and modification time across "
        "epochs; bytes from a shard are scanned again each time they are decoded, which is most of the gap "
        "without workers.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
