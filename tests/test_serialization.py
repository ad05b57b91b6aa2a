import argparse
import builtins
import os
import pathlib
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from zoo.serialization import (
    UnsafeCheckpointError,
    is_safetensors,
    load_raw,
    load_state_dict,
    read_metadata,
    safe_torch_load,
    save_state_dict,
)


class _SystemCall:
    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Exec:
    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",))


class _Open:
    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (builtins.open, (str(self.marker), "w"))


@pytest.mark.parametrize(
    ("payload", "refused"), [(_SystemCall, "posix.system"), (_Exec, "exec"), (_Open, "open")]
)
def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path, payload, refused):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model_state": {"w": torch.ones(2)}, "payload": payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError) as err:
        load_state_dict(path)
    assert not marker.exists()
    assert str(path) in str(err.value) and refused in err.value.refused
    assert "weights-only" in str(err.value) and "weights_only=False" not in str(err.value)
    assert isinstance(err.value, pickle.UnpicklingError)


def _slowfast_like(tmp_path, legacy: bool = False) -> pathlib.Path:
    """A training checkpoint as the original repos save them: numpy scalars/arrays, args, OrderedDict."""
    state = OrderedDict(
        [("blocks.0.weight", torch.arange(6.0).reshape(2, 3)), ("blocks.0.bias", torch.tensor([1.0, -1.0]))]
    )
    raw = {
        "epoch": np.int64(30),
        "best_acc1": np.float32(0.75),
        "queue_sizes": np.arange(4, dtype=np.int32),
        "cfg_dtype": np.dtype("float64"),
        "args": argparse.Namespace(lr=0.1, arch="r2plus1d_18", output_dir=pathlib.PosixPath("/runs/x")),
        "model_state": state,
    }
    path = tmp_path / ("legacy.pyth" if legacy else "ckpt.pyth")
    torch.save(raw, path, _use_new_zipfile_serialization=not legacy)
    return path


def test_legacy_checkpoint_with_numpy_and_args_loads(tmp_path):
    path = _slowfast_like(tmp_path)
    raw = safe_torch_load(path)
    assert raw["epoch"] == 30 and isinstance(raw["epoch"], np.integer)
    assert raw["args"].arch == "r2plus1d_18" and raw["args"].output_dir == pathlib.PosixPath("/runs/x")
    np.testing.assert_array_equal(raw["queue_sizes"], np.arange(4))
    state = load_state_dict(path)  # unwrapped from 'model_state'
    assert list(state) == ["blocks.0.weight", "blocks.0.bias"]
    assert torch.equal(state["blocks.0.weight"], torch.arange(6.0).reshape(2, 3))


def test_numpy1_global_names_load(tmp_path):
    """Pickles written under numpy 1.x name ``numpy.core.multiarray``; they load under numpy 2 too."""
    path = _slowfast_like(tmp_path, legacy=True)
    data = path.read_bytes()
    if b"numpy._core.multiarray" in data:
        data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        path.write_bytes(data)
    assert b"numpy.core.multiarray" in data
    assert safe_torch_load(path)["epoch"] == 30


def test_allow_list_leaves_caller_globals_alone(tmp_path):
    torch.serialization.add_safe_globals([argparse.Namespace])
    try:
        safe_torch_load(_slowfast_like(tmp_path))
        assert argparse.Namespace in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
    assert argparse.Namespace not in torch.serialization.get_safe_globals()


def test_extra_globals_opt_in(tmp_path):
    path = tmp_path / "slice.pth"
    torch.save({"w": torch.ones(1), "s": slice(1, 3)}, path)
    with pytest.raises(UnsafeCheckpointError, match="slice"):
        safe_torch_load(path)
    assert safe_torch_load(path, extra_globals=[slice])["s"] == slice(1, 3)


def test_load_state_dict_key_and_errors(tmp_path):
    path = _slowfast_like(tmp_path)
    with pytest.raises(KeyError, match="no 'nope'"):
        load_state_dict(path, key="nope")
    bare = tmp_path / "bare.pth"
    torch.save({"epoch": 3, "cfg": "x"}, bare)
    with pytest.raises(ValueError, match="not a dict of tensors"):
        load_state_dict(bare)
    with pytest.raises(FileNotFoundError):
        load_state_dict(tmp_path / "missing.pth")


def test_save_state_dict_shared_tensors_metadata_roundtrip(tmp_path):
    weight = torch.randn(3, 4)
    state = {
        "embed.weight": weight,
        "head.weight": weight,
        "view": weight[1:],
        "t": weight.t(),
        "empty": torch.empty(0),
    }
    path = save_state_dict(state, tmp_path / "sub" / "w.safetensors", metadata={"epoch": 3, "format": "pt"})
    assert is_safetensors(path) and not is_safetensors(_slowfast_like(tmp_path))
    loaded = load_state_dict(path)
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value)
    loaded["embed.weight"] += 1  # tied weights are stored as separate copies
    assert not torch.equal(loaded["embed.weight"], loaded["head.weight"])
    assert read_metadata(path) == {"epoch": "3", "format": "pt"}
    assert torch.equal(load_raw(path)["t"], weight.t())
    assert [p.name for p in path.parent.iterdir()] == ["w.safetensors"]  # no temporary file left


def test_save_state_dict_failure_leaves_nothing(tmp_path):
    target = tmp_path / "w.safetensors"
    save_state_dict({"a": torch.ones(2)}, target)
    with pytest.raises(TypeError, match="'b' is a int"):
        save_state_dict({"a": torch.zeros(2), "b": 3}, target)
    assert torch.equal(load_state_dict(target)["a"], torch.ones(2))  # the old file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.safetensors"]


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.pth", b""), ("short.safetensors", None), ("garbage.pt", b"<html>not found</html>")],
)
def test_unreadable_file_is_one_error_naming_it(tmp_path, name, content):
    from zoo.errors import UsageError, WeightsFileError
    from zoo.serialization import check_readable

    path = tmp_path / name
    if content is None:
        save_state_dict({"w": torch.ones(100)}, path)
        content = path.read_bytes()[:-10]
    path.write_bytes(content)
    for read in (load_raw, load_state_dict, check_readable):
        with pytest.raises(WeightsFileError, match=str(path)) as err:
            read(path)
        assert isinstance(err.value, UsageError) and "\n" not in str(err.value)


def test_data_parallel_prefix_and_wrapping_are_unwrapped_in_one_place(tmp_path):
    from zoo.serialization import strip_prefix, unwrap_state_dict

    w = torch.ones(2)
    assert unwrap_state_dict({"state_dict": {"module.a.w": w, "module.b": w}}) == {"a.w": w, "b": w}
    assert unwrap_state_dict({"model": {"module.a": w, "b": w}}) == {"module.a": w, "b": w}  # not every key
    assert strip_prefix({"enc.a": w, "head.b": w}, "enc.") == {"a": w}


def test_convert_with_the_wrong_format_is_one_line(tmp_path, capsys):
    from zoo.cli import main

    src = save_state_dict({"not.a.motionformer": torch.ones(2)}, tmp_path / "w.safetensors")
    assert main(["convert", "motionformer-pyth", str(src), str(tmp_path / "out.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(src) in err and "'motionformer-pyth'" in err
    assert not (tmp_path / "out.safetensors").exists()
