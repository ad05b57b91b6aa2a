"""Tar shards: ``zoo data shard`` writes the videos' own bytes and annotation (WebDataset layout) with an index;
every video DataModule streams them, locally or over HTTP, split over ranks and workers, skipping and counting
what cannot be read; bad shards and unreachable URLs are named errors, never a hang."""

import argparse
import contextlib
import functools
import http.server
import json
import re
import shutil
import socket
import tarfile
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
from helpers import generate_synth, tiny_synth
from torch.utils.data import DataLoader

from zoo.data.commands import configure
from zoo.data.datamodule import VideoDataModule
from zoo.data.datamodules import DocumentDataModule
from zoo.data.datasets import UnreadableVideoWarning, collate_samples
from zoo.data.shards import ShardError, ShardStream, expand_braces, parse_size, read_index, write_shards
from zoo.errors import UsageError

SYNTH = tiny_synth(
    num_frames=12, num_classes=3, train_per_class=4, val_per_class=2, test_per_class=1, languages=("en", "de")
)
SHARD_BYTES = 25_000  # two or three samples per shard


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synth(tmp_path_factory.mktemp("synth"), SYNTH)


def _files(synth_root: Path, **kwargs) -> VideoDataModule:
    defaults = dict(
        synth=SYNTH, synth_root=str(synth_root), num_frames=4, size=16, batch_size=2, num_workers=0
    )
    return VideoDataModule(**{**defaults, **kwargs})


@pytest.fixture(scope="module")
def shard_dir(synth_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    files = _files(synth_root)
    for split in ("train", "val"):
        write_shards(files.records(split), out, split, max_size=SHARD_BYTES, progress=False)
    return out


def _streamed(shards, **kwargs) -> VideoDataModule:
    defaults = dict(shards=shards, num_frames=4, size=16, batch_size=2, num_workers=0)
    return VideoDataModule(**{**defaults, **kwargs})


def _indices(loader) -> list[int]:
    return [int(i) for batch in loader for i in batch["index"]]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request
        pass


@contextlib.contextmanager
def _http_server(folder: Path):
    """A threaded HTTP server on 127.0.0.1 serving ``folder``; stopped on exit."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---- writing


def test_shards_hold_the_original_bytes_and_annotation(synth_root, shard_dir):
    records = _files(synth_root).records("train")
    index = json.loads((shard_dir / "train.index.json").read_text())
    assert index["samples"] == len(records.records) == 12 and index["classes"] == records.classes
    assert len(index["shards"]) > 2 and sum(s["samples"] for s in index["shards"]) == 12
    assert not list(shard_dir.glob(".*partial"))  # written under a temporary name, renamed when complete
    number = 0
    for shard in index["shards"]:
        path = shard_dir / shard["name"]
        assert path.stat().st_size <= SHARD_BYTES
        with tarfile.open(path) as tar:
            names = tar.getnames()
            assert names == [f"{key}{ext}" for key in shard["keys"] for ext in (".mp4", ".json")]
            for key in shard["keys"]:
                record = records.records[number]
                assert tar.extractfile(f"{key}.mp4").read() == record.path.read_bytes()  # not re-encoded
                meta = json.loads(tar.extractfile(f"{key}.json").read())
                assert meta["label"] == record.label and meta["index"] == number
                assert meta["extra"]["captions"] == record.extra["captions"]  # every language
                assert set(meta["extra"]["captions"]) == {"en", "de"}
                number += 1
    assert read_index(str(shard_dir / "train.index.json")).sha256[0] == index["shards"][0]["sha256"]


def test_zoo_data_shard_command(tmp_path, synth_root, capsys):
    parser = argparse.ArgumentParser(prog="zoo data")
    configure(parser)
    manifest = synth_root / "val.csv"
    args = parser.parse_args(
        ["shard", str(manifest), str(tmp_path / "out"), "--split", "val", "--max-size", "1GB"]
    )
    assert args.func(args) == 0
    index = json.loads((tmp_path / "out" / "val.index.json").read_text())
    assert (
        len(index["shards"]) == 1 and index["samples"] == 6 and index["pattern"] == "val-{000000..000000}.tar"
    )
    assert "val.index.json" in capsys.readouterr().out


def test_sizes_and_brace_patterns():
    assert parse_size("1GB") == 10**9 and parse_size("64KiB") == 65536 and parse_size("1048576") == 2**20
    with pytest.raises(UsageError, match="max-size"):
        parse_size("lots")
    assert expand_braces("s-{08..10}.tar") == ["s-08.tar", "s-09.tar", "s-10.tar"]


# ---- streaming


def test_streamed_samples_equal_the_files(synth_root, shard_dir):
    last = len(read_index(str(shard_dir / "val.index.json")).counts) - 1
    files, streamed = (
        _files(synth_root),
        _streamed({"val": str(shard_dir / f"val-{{000000..{last:06d}}}.tar")}),
    )
    assert streamed.classes == files.classes and not streamed.uses_synth
    streamed.setup("validate")
    files.setup("validate")
    expected = collate_samples([files.datasets["val"][i] for i in range(6)])
    batches = list(streamed.val_dataloader())
    got = {k: torch.cat([b[k] for b in batches]) for k in ("video", "label", "index")}
    assert torch.equal(got["index"], torch.arange(6))
    assert torch.equal(got["label"], expected["label"]) and torch.equal(got["video"], expected["video"])


def test_training_epochs_split_over_ranks_and_workers_without_overlap(shard_dir):
    pattern = str(shard_dir / "train.index.json")
    seen: dict[int, list[int]] = {}
    for rank in (0, 1):
        module = _streamed(pattern, batch_size=2, num_workers=2, shuffle_buffer=3)
        module.setup("fit")
        stream = module.datasets["train"]
        stream.distribute(2, rank, 2)
        loader = DataLoader(stream, batch_size=2, num_workers=2, collate_fn=collate_samples)
        assert len(loader) == 3  # 12 samples over 2 ranks, in batches of 2
        stream.set_epoch(0)
        seen[rank] = _indices(loader)
        owned = {i for s in stream._shards() for i in range(*_span(stream, s))}
        assert set(seen[rank]) <= owned  # only this rank's shards
        stream.set_epoch(1)
        assert sorted(_indices(loader)) != seen[rank] or len(owned) > 6  # a new order (or new samples)
    assert not set(seen[0]) & set(seen[1])
    assert len(seen[0]) == len(seen[1]) == 6


def _span(stream: ShardStream, shard: int) -> tuple[int, int]:
    first = int(stream.index.offsets()[shard])
    return first, first + stream.index.counts[shard]


def test_shuffle_is_seeded_and_mixes(shard_dir):
    def order(seed: int, epoch: int) -> list[int]:
        module = _streamed(str(shard_dir / "train.index.json"), seed=seed, shuffle_buffer=4)
        module.setup("fit")
        loader = module.train_dataloader()
        loader.dataset.set_epoch(epoch)
        return _indices(loader)

    first = order(0, 0)
    assert sorted(first) == list(range(12))  # one reader with every shard: each sample once
    assert first == order(0, 0) and first != sorted(first)
    assert first != order(1, 0) and first != order(0, 1)


def test_streaming_over_http_equals_local(shard_dir):
    local = _streamed({"val": str(shard_dir / "val.index.json")})
    local.setup("validate")
    expected = torch.cat([b["video"] for b in local.val_dataloader()])
    with _http_server(shard_dir) as url:
        remote = _streamed({"val": f"{url}/val.index.json"}, num_workers=2)
        remote.setup("validate")
        got = torch.cat([b["video"] for b in remote.val_dataloader()])
    assert torch.equal(got, expected)


# ---- bad input


def test_unreachable_url_is_one_named_error(shard_dir):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"http://127.0.0.1:{port}/train-{{000000..000003}}.tar"
    with pytest.raises(ShardError, match=f"cannot read http://127.0.0.1:{port}/train.index.json"):
        _streamed(url).setup("fit")


def test_a_silent_server_times_out_naming_the_url():
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/train.index.json"
        started = time.monotonic()
        with pytest.raises(ShardError, match=f"cannot read {url}"):
            _streamed(url, shard_timeout=0.5).setup("fit")
        assert time.monotonic() - started < 30  # bounded by the timeout, not a hang


def test_truncated_shard_skips_and_counts_its_lost_samples(shard_dir, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(shard_dir, folder)
    index = read_index(str(folder / "val.index.json"))
    shard = folder / "val-000000.tar"
    with tarfile.open(shard) as tar:
        second_video = tar.getmembers()[2]
    with shard.open("r+b") as f:
        f.truncate(second_video.offset_data + 100)
    lost = index.keys[0][1:]
    module = _streamed({"val": str(folder / "val.index.json")}, max_error_fraction=0.9)
    module.setup("validate")
    reason = f"{shard}#{lost[0]}': truncated or unreadable after 1 of {1 + len(lost)} samples"
    with pytest.warns(UnreadableVideoWarning, match=re.escape(reason)):
        indices = _indices(module.val_dataloader())
    assert indices == [i for i in range(6) if not 1 <= i <= len(lost)]
    stats = module.error_stats()["val"]
    assert stats["bad_records"] == len(lost) and stats["bad_paths"][0].startswith(f"{shard}#{lost[0]}")


def test_too_many_bad_samples_stop_the_run(shard_dir, tmp_path):
    folder = tmp_path / "cut"
    shutil.copytree(shard_dir, folder)
    (folder / "val-000000.tar").write_bytes((folder / "val-000000.tar").read_bytes()[:2000])
    module = _streamed({"val": str(folder / "val.index.json")}, max_error_fraction=0.2)
    module.setup("validate")
    with warnings.catch_warnings(), pytest.raises(RuntimeError, match=r"max_error_fraction=0\.2"):
        warnings.simplefilter("ignore", UnreadableVideoWarning)
        _indices(module.val_dataloader())


def test_members_that_do_not_match_the_index_are_named(shard_dir, tmp_path):
    folder = tmp_path / "other"
    shutil.copytree(shard_dir, folder)
    index = json.loads((folder / "val.index.json").read_text())
    index["shards"][0]["keys"][1] = "000000999"
    (folder / "val.index.json").write_text(json.dumps(index))
    module = _streamed({"val": str(folder / "val.index.json")})
    module.setup("validate")
    with pytest.raises(ShardError, match=r"val-000000.tar: member 000000001.mp4 does not match the index"):
        _indices(module.val_dataloader())


def test_a_changed_shard_fails_its_checksum(shard_dir, tmp_path):
    folder = tmp_path / "changed"
    shutil.copytree(shard_dir, folder)
    index = json.loads((folder / "val.index.json").read_text())
    index["shards"][0]["sha256"] = "0" * 64
    (folder / "val.index.json").write_text(json.dumps(index))
    module = _streamed({"val": str(folder / "val.index.json")})
    module.setup("validate")
    with pytest.raises(ShardError, match="sha256 differs"):
        _indices(module.val_dataloader())


def test_pattern_outside_the_index_and_too_few_shards(shard_dir):
    with pytest.raises(ShardError, match=r"shard train-\d{6}\.tar is not in its index .*train\.index\.json"):
        _streamed(str(shard_dir / "train-{000000..000099}.tar")).setup("fit")
    module = _streamed(str(shard_dir / "train-{000000..000000}.tar"))
    module.setup("fit")
    with pytest.raises(UsageError, match="1 shards cannot feed 2 ranks"):
        module.datasets["train"].distribute(2, 0, 1)


def test_shards_of_another_kind_or_split_are_refused(shard_dir):
    with pytest.raises(
        ShardError, match=r"train\.index\.json holds video samples; DocumentDataModule reads documents"
    ):
        DocumentDataModule(shards=str(shard_dir / "train.index.json"))
    with pytest.raises(UsageError, match="unknown split 'training'"):
        _streamed({"training": "x-{0..1}.tar"})


def test_resume_with_another_world_size_says_what_is_restored(synth_root):
    module = _files(synth_root)
    module.setup("fit")
    loader = module.train_dataloader()
    state = {"epoch": 1, "batches": 2, "world_size": 2, "num_workers": 0, "errors": None}
    with pytest.warns(
        UserWarning, match=r"world_size 2 -> 1.*epoch \(1\).*restored.*order of the samples is not"
    ):
        loader.load_state_dict(state)
    assert len(list(loader)) == len(loader) - 2  # the epoch goes on after its first 2 batches
