"""FSDP on CPU: ``VideoClassifier.configure_model`` shards a Motionformer with FSDP2 (``fully_shard``) over the
device mesh Lightning's ``ModelParallelStrategy`` gives it; gloo runs it on CPU processes.

Lightning's ``FSDPStrategy`` (FSDP1) does not run on CPU: it passes ``device_id=None`` there and
``FullyShardedDataParallel`` then raises "FSDP needs a non-CPU accelerator device". FSDP2 has no such limit,
so the recipe (``configs/motionformer/k400_large_fsdp.yaml``) uses ``ModelParallelStrategy``, and these tests
run its sharding on two CPU processes:

* two ranks with B/2 clips each, sharded, with activation checkpointing, give the loss, the gathered
  gradients and the weights after one AdamW step of one unsharded process with the whole batch B
  (float64, tolerance 1e-9);
* ``zoo fit`` trains the recipe, shrunk to a tiny Motionformer, on two CPU processes in float32 and in
  bf16-mixed, and the checkpoint it saves (a full state dict) loads strictly into a plain single-process
  ``VideoClassifier``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import yaml
from helpers import generate_synth, run_ranks, tiny_fit_override

from zoo.errors import UsageError
from zoo.methods.classifier import VideoClassifier
from zoo.methods.optim import build_optimizer
from zoo.serialization import safe_torch_load

RECIPE = Path(__file__).parents[2] / "configs" / "motionformer" / "k400_large_fsdp.yaml"
WORLD = 2
BATCH = 4
NUM_CLASSES = 3
TINY_BACKBONE = {"depth": 2, "img_size": 32, "num_frames": 4, "drop_path_rate": 0.0}


def _classifier(**backbone_args) -> VideoClassifier:
    """The same float64 tiny Motionformer classifier on every process, activation checkpointing on."""
    torch.manual_seed(0)
    return VideoClassifier(
        backbone="motionformer_tiny",
        backbone_args={**TINY_BACKBONE, "activation_checkpointing": True, **backbone_args},
        num_classes=NUM_CLASSES,
        lr=1e-3,
    ).double()


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    video = torch.randn(BATCH, 3, 4, 32, 32, dtype=torch.float64, generator=generator)  # (B, C, T, H, W)
    return {"video": video, "label": torch.randint(0, NUM_CLASSES, (BATCH,), generator=generator)}


def _train_step(module: VideoClassifier, batch: dict[str, torch.Tensor]) -> dict[str, object]:
    """Loss, gradients and weights after one AdamW step, the last two gathered whole (weights on rank 0)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.tensor import DTensor

    optimizer = build_optimizer("adamw", module._param_groups(), module.hparams.lr, module.hparams.momentum)
    loss = module.training_step(batch, 0)
    loss.backward()
    grads = {
        name: (p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad).clone()
        for name, p in module.model.named_parameters()
    }
    optimizer.step()
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return {
        "loss": loss.detach(),
        "grads": grads,
        "weights": get_model_state_dict(module.model, options=options),
    }


def _mesh(data_parallel: int, tensor_parallel: int):
    """The CPU mesh ``ModelParallelStrategy`` builds for these ``data_parallel_size`` and ``tensor_parallel_size``."""
    from torch.distributed.device_mesh import init_device_mesh

    names = ("data_parallel", "tensor_parallel")
    return init_device_mesh("cpu", (data_parallel, tensor_parallel), mesh_dim_names=names)


def _sharded_worker(rank: int, out_dir: str) -> None:
    from torch.distributed.fsdp import FSDPModule

    module = _classifier()
    module._device_mesh = _mesh(1, WORLD)
    with pytest.raises(UsageError) as refused:
        module.configure_model()
    (Path(out_dir) / f"refused{rank}.txt").write_text(str(refused.value))
    module._device_mesh = _mesh(WORLD, 1)
    module.configure_model()
    assert isinstance(module.model, FSDPModule)
    assert all(isinstance(block, FSDPModule) for block in module.model.blocks)
    qkv = module.model.blocks[0].attn.qkv.weight
    assert qkv.to_local().shape[0] == qkv.shape[0] // WORLD  # each rank holds half of the rows
    half = BATCH // WORLD
    result = _train_step(module, {k: v[rank * half : (rank + 1) * half] for k, v in _batch().items()})
    dist.all_reduce(result["loss"])
    result["loss"] /= WORLD
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")


@pytest.fixture(scope="module")
def sharded_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Each rank's sharded step (``rank{r}.pt``) and the error a tensor-parallel mesh gave it (``refused{r}.txt``)."""
    out = tmp_path_factory.mktemp("fsdp")
    run_ranks(_sharded_worker, str(out), world=WORLD, timeout_s=300)
    return out


@pytest.mark.slow  # two spawned processes: about 15 s of CPU
@pytest.mark.filterwarnings("ignore:You are trying to `self.log")  # the training step without a Trainer
def test_two_sharded_ranks_with_half_the_batch_equal_one_process(sharded_runs):
    single = _train_step(_classifier(), _batch())
    for rank in range(WORLD):
        sharded = torch.load(sharded_runs / f"rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(sharded["loss"], single["loss"], rtol=1e-9, atol=1e-9)
        assert sharded["grads"].keys() == single["grads"].keys()
        for name in ("blocks.0.attn.qkv.weight", "patch_embed.proj.weight", "head.weight"):
            assert single["grads"][name].abs().sum() > 0, f"{name}: no gradient"
        for name, grad in single["grads"].items():
            torch.testing.assert_close(sharded["grads"][name], grad, rtol=1e-9, atol=1e-9, msg=name)
        if rank > 0:  # the full state dict is gathered on rank 0 only, as when Lightning saves a checkpoint
            assert not sharded["weights"]
            continue
        assert sharded["weights"].keys() == single["weights"].keys()
        for name, weight in single["weights"].items():
            torch.testing.assert_close(sharded["weights"][name], weight, rtol=1e-9, atol=1e-9, msg=name)


@pytest.mark.slow  # the same two spawned processes
def test_a_tensor_parallel_mesh_is_refused_with_the_lines_to_change(sharded_runs):
    for rank in range(WORLD):
        message = (sharded_runs / f"refused{rank}.txt").read_text()
        assert "tensor_parallel_size: 1" in message and "data_parallel_size: 2" in message


def test_without_a_mesh_the_model_is_left_as_it_is():
    module = _classifier()
    model = module.model
    module.configure_model()
    assert module.model is model and type(model).__name__ == "VideoTransformer"


def test_a_backbone_without_blocks_is_refused_by_name():
    class OneProcessMesh:  # what configure_model reads of a device mesh, without a process group
        def __getitem__(self, name: str) -> OneProcessMesh:
            return self

        def size(self) -> int:
            return 1

    module = VideoClassifier(backbone="r3d_tiny", num_classes=NUM_CLASSES)
    module._device_mesh = OneProcessMesh()
    with pytest.raises(UsageError, match="'r3d_tiny' has no `blocks`"):
        module.configure_model()


def test_the_recipe_shards_motionformer_l_with_activation_checkpointing():
    recipe = yaml.safe_load(RECIPE.read_text())
    trainer, model = recipe["trainer"], recipe["model"]["init_args"]
    strategy = trainer["strategy"]
    assert strategy["class_path"] == "lightning.pytorch.strategies.ModelParallelStrategy"
    assert strategy["init_args"]["data_parallel_size"] == trainer["devices"] * trainer["num_nodes"]
    assert strategy["init_args"]["tensor_parallel_size"] == 1
    assert strategy["init_args"]["save_distributed_checkpoint"] is False
    assert model["backbone"] == "motionformer_l_224"
    assert model["backbone_args"]["activation_checkpointing"] is True


@pytest.mark.slow  # two spawned training processes: about a minute on a busy machine
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_zoo_fit_trains_the_fsdp_recipe_on_two_cpu_processes(tmp_path, tiny_synth_data, precision):
    generate_synth(Path(tiny_synth_data["synth_root"]), tiny_synth_data["synth"])  # before the ranks start
    data = {**tiny_synth_data, "train_manifest": None, "val_manifest": None, "test_manifest": None}
    data |= {"format": "generic", "stride": 2.0, "size": 32, "test_clips": 1, "test_crops": 1}
    override = tiny_fit_override(tmp_path, data)
    tiny = {
        "trainer.accelerator": "cpu",
        "trainer.devices": "2",
        "trainer.num_nodes": "1",
        "trainer.precision": precision,
        "trainer.strategy.init_args.data_parallel_size": "2",
        "model.init_args.backbone": "motionformer_tiny",
        "model.init_args.backbone_args": yaml.safe_dump({**TINY_BACKBONE, "activation_checkpointing": True}),
    }
    flags = [arg for key, value in tiny.items() for arg in (f"--{key}", value)]
    command = [sys.executable, "-m", "zoo.cli", "fit", "--config", str(RECIPE), "--config", str(override)]
    done = subprocess.run([*command, *flags], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "All distributed processes registered. Starting with 2 processes" in done.stderr + done.stdout
    checkpoint = safe_torch_load(tmp_path / "ckpt" / "last.ckpt")
    assert checkpoint["global_step"] == 1  # 8 training clips, 4 a process: the ranks split the one epoch
    plain = VideoClassifier.load_from_checkpoint(tmp_path / "ckpt" / "last.ckpt")  # one process, no mesh
    assert plain.device_mesh is None and type(plain.model).__name__ == "VideoTransformer"
    state = plain.state_dict()
    assert state.keys() == checkpoint["state_dict"].keys()
    for name, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(state[name], value, rtol=0, atol=0, msg=name)
    qkv = checkpoint["state_dict"]["model.blocks.0.attn.qkv.weight"]
    assert qkv.shape == plain.model.blocks[0].attn.qkv.weight.shape == (3 * 96, 96)
    with torch.no_grad():
        logits = plain.eval()(torch.randn(1, 3, 4, 32, 32))
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
    if precision != "32-true":
        return
    # the full checkpoint resumes under FSDP: weights, optimiser state and loops are sharded back onto the ranks
    resume = [
        "--ckpt_path",
        str(tmp_path / "ckpt" / "last.ckpt"),
        "--trainer.max_epochs",
        "2",
        "--trainer.max_steps",
        "-1",
    ]
    resumed = subprocess.run([*command, *flags, *resume], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Restored all states from the checkpoint" in resumed.stderr + resumed.stdout
    after = safe_torch_load(tmp_path / "ckpt" / "last.ckpt")
    assert (after["global_step"], after["epoch"]) == (2, 1)  # one more step, in the second epoch
    moved = [n for n, v in after["state_dict"].items() if not torch.equal(v, checkpoint["state_dict"][n])]
    assert "model.blocks.0.attn.qkv.weight" in moved  # it trained on from the restored weights
