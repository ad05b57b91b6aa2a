"""TOT converter: a checkpoint saved in the original layout ({"epoch", "state_dict", "optimizer"} of its
MLP) loads into TOTNetwork and scores frames as the original network would (independent math)."""

from __future__ import annotations

import pytest
import torch

from zoo.convert import ConversionError, convert_file
from zoo.convert.tot import load_tot_checkpoint


def _original_state(feature_dim=64, embed_dim=30, clusters=7, time_head=False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    state = {
        "fc1.weight": torch.randn(2 * embed_dim, feature_dim, generator=g) * 0.1,
        "fc1.bias": torch.randn(2 * embed_dim, generator=g) * 0.1,
        "fc2.weight": torch.randn(embed_dim, 2 * embed_dim, generator=g) * 0.1,
        "fc2.bias": torch.randn(embed_dim, generator=g) * 0.1,
        "prototype_layer.weight": torch.randn(clusters, embed_dim, generator=g),
    }
    if time_head:
        state |= {"fc_last.weight": torch.randn(1, embed_dim, generator=g), "fc_last.bias": torch.zeros(1)}
    return state


def _save_original(path, state):
    params = [torch.nn.Parameter(v.clone()) for v in state.values()]
    optimizer = torch.optim.Adam(params, lr=1e-3, weight_decay=1e-4)
    torch.save({"epoch": 3, "state_dict": state, "optimizer": optimizer.state_dict()}, path)
    return path


@pytest.mark.parametrize("time_head", [False, True])
def test_original_checkpoint_loads_and_scores_frames_as_the_original(tmp_path, time_head):
    state = _original_state(time_head=time_head)
    network = load_tot_checkpoint(_save_original(tmp_path / "coffee.pth.tar", state))
    assert (network.feature_dim, network.embed_dim, network.num_clusters) == (64, 30, 7)
    x = torch.randn(50, 64)
    hidden = torch.sigmoid(x @ state["fc1.weight"].T + state["fc1.bias"])  # (N, 2E)
    z = torch.sigmoid(hidden @ state["fc2.weight"].T + state["fc2.bias"])  # (N, E)
    embeddings, scores = network(x)
    torch.testing.assert_close(embeddings, z, rtol=0, atol=1e-6)
    torch.testing.assert_close(scores, z @ state["prototype_layer.weight"].T, rtol=0, atol=1e-5)


def test_bigger_mlp_and_broken_files_are_named_errors(tmp_path):
    bigger = _original_state() | {"fc3.weight": torch.zeros(60, 60), "fc4.weight": torch.zeros(30, 60)}
    with pytest.raises(ConversionError, match="MLP_bigger"):
        convert_file("tot-pth", _save_original(tmp_path / "big.pth.tar", bigger))
    missing = {k: v for k, v in _original_state().items() if k != "prototype_layer.weight"}
    with pytest.raises(ConversionError, match=r"prototype_layer\.weight"):
        convert_file("tot-pth", _save_original(tmp_path / "missing.pth.tar", missing))
    broken = _original_state() | {"fc2.weight": torch.zeros(30, 50)}
    with pytest.raises(ConversionError, match="do not chain"):
        convert_file("tot-pth", _save_original(tmp_path / "broken.pth.tar", broken))
