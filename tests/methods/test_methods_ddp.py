"""Training on several processes. Every method whose training step reads other samples of the batch: two gloo
ranks with B/2 samples each give the loss and the (DDP-averaged) gradients of one process with the whole batch
B; and ``zoo fit`` trains a shipped recipe with ``--trainer.devices 2 --trainer.strategy ddp`` on CPU.

Each method is built from its shipped SynthMotion recipe and fed one real batch of that recipe's data module
(4 samples of a tiny SynthMotion set, in float64). One process runs ``ssl_step`` on the 4 samples; each of
two ranks runs it on its 2, averages its gradients over the ranks as DDP does, and the test compares the
mean loss and every gradient (tolerance 1e-9). Methods with a memory queue also hold, after the step, the
same queue as the single process (rank 0's keys first).

What is not compared, and why:

* The models run in eval mode in both runs: BatchNorm on its running statistics (each rank's own batch
  statistics are DDP's semantics on CPU; ``SyncBatchNorm`` needs CUDA: ``--trainer.sync_batchnorm true``
  on GPUs) and no dropout (each rank draws its own masks). No step of these methods reads ``self.training``.
* DeCLUTR runs without its masked-LM term: each rank draws its own masks and averages over its own masked
  tokens (as in Hugging Face's DDP training), so only the contrastive term can equal one process's.
* The SeLaVi and XDC steps read their cluster labels from buffers the whole-dataset pass fills (gathered
  over ranks, tested in ``test_methods_memory_ddp.py``); here the buffers hold the same random labels.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import yaml
from helpers import generate_synth, run_ranks, tiny_fit_override, tiny_synth
from lightning.fabric.utilities.apply_func import apply_to_collection

from zoo.methods.base import SSLMethod
from zoo.serialization import safe_torch_load

CONFIGS = Path(__file__).parents[2] / "configs"
BATCH = 4
SYNTH = tiny_synth(  # 20 frames: CMD needs its clip, its future window and a hard negative
    num_classes=2, train_per_class=4, val_per_class=1, test_per_class=1, audio=True, num_frames=20
)
NUM_TRAIN = 8  # training clips of SYNTH
WORLD = 2
# case (a recipe, or a recipe with a batch variant) -> model init_args changed for the comparison (see the module docstring)
METHODS = {
    "simclr": {},
    "moco": {},
    "be": {},
    "dsm": {},
    "cmd": {},
    "declutr": {"mlm_weight": 0.0},
    "selavi": {},
    "xdc": {},
    "selavi-uneven-sound": {},  # one rank's clips all sound, the other's half silent
    "xdc-uneven-sound": {"silent_clips": "skip"},
}
SILENT_SAMPLE = 3  # silenced in the "-uneven-sound" cases: rank 0 has two sounding clips, rank 1 one


def _recipe(case: str) -> str:
    return case.split("-")[0]


def _instantiate(spec: dict[str, Any], **extra: Any) -> Any:
    module, name = spec["class_path"].rsplit(".", 1)
    return getattr(importlib.import_module(module), name)(**{**spec.get("init_args", {}), **extra})


def _model(case: str) -> SSLMethod:
    """The case's recipe method in float64 with the same weights on every process."""
    spec = yaml.safe_load((CONFIGS / _recipe(case) / "synthmotion.yaml").read_text())["model"]
    torch.manual_seed(0)
    model = _instantiate(spec, **METHODS[case], num_classes=2).double()
    model.eval()  # BatchNorm on running statistics, no dropout (gradients flow as in training)
    generator = torch.Generator().manual_seed(1)
    for buffer in model.label_buffers.values():  # SeLaVi, XDC: what the dataset pass would have written
        buffer.resize(NUM_TRAIN)
        buffer.labels.copy_(torch.randint(0, 2, buffer.labels.shape, generator=generator))
    for name, weights in model.named_buffers():  # XDC: cluster-balancing class weights, here uneven
        if name.endswith("target_weights"):
            weights.copy_(torch.rand(weights.shape, generator=generator, dtype=weights.dtype) + 0.5)
    return model


def _batch(case: str, synth_root: Path) -> dict[str, Any]:
    """One batch of ``BATCH`` samples from the case's recipe data module on the tiny set, float tensors in
    float64; ``SILENT_SAMPLE`` without sound in the ``-uneven-sound`` cases."""
    data = yaml.safe_load((CONFIGS / _recipe(case) / "synthmotion.yaml").read_text())["data"]
    clips = {"num_frames": 4} if "num_frames" in data["init_args"] else {}  # 4 frames a clip, as in fit tests
    module = _instantiate(
        data,
        **clips,
        synth=SYNTH,
        synth_root=str(synth_root),
        batch_size=BATCH,
        num_workers=0,
        persistent_workers=False,
    )
    module.prepare_data()
    module.setup("fit")
    torch.manual_seed(0)
    batch = next(iter(module.train_dataloader()))
    if case.endswith("-uneven-sound"):
        batch["audio_mask"][SILENT_SAMPLE] = False
        batch["audio"][SILENT_SAMPLE] = 0.0
    return apply_to_collection(batch, torch.Tensor, lambda t: t.double() if t.is_floating_point() else t)


def _split(batch: Any, part: slice) -> Any:
    """Rank ``part``'s samples of ``batch`` (every tensor's first dimension is the sample, positives ``P·B``)."""

    def take(t: torch.Tensor) -> torch.Tensor:
        per_sample = t.shape[0] // BATCH
        return t[part.start * per_sample : part.stop * per_sample]

    return apply_to_collection(batch, torch.Tensor, take)


def _step(model: SSLMethod, batch: dict[str, Any]) -> dict[str, Any]:
    model.zero_grad()
    loss = model.ssl_step(batch)["loss"]
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    for queue in model.queues.values():
        queue.flush()
    return {
        "loss": loss.detach(),
        "grads": grads,
        "queues": {n: q.state_dict() for n, q in model.queues.items()},
    }


def _worker(rank: int, out_dir: str) -> None:
    for case in METHODS:
        batch = torch.load(Path(out_dir) / f"{case}.batch.pt", weights_only=False)
        per_rank = BATCH // WORLD
        result = _step(_model(case), _split(batch, slice(rank * per_rank, (rank + 1) * per_rank)))
        for tensor in [result["loss"], *result["grads"].values()]:
            dist.all_reduce(tensor)
            tensor /= WORLD  # DDP averages the gradients over the ranks
        torch.save(result, Path(out_dir) / f"{case}.rank{rank}.pt")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every method's batch, its single-process step (``single.pt``) and each rank's (``rank{r}.pt``)."""
    out = tmp_path_factory.mktemp("ddp")
    synth_root = out / "synth"
    generate_synth(synth_root, SYNTH)
    for case in METHODS:
        batch = _batch(case, synth_root)
        torch.save(batch, out / f"{case}.batch.pt")
        torch.save(_step(_model(case), batch), out / f"{case}.single.pt")
    run_ranks(_worker, str(out), world=WORLD, timeout_s=300)
    return out


@pytest.mark.slow  # about a minute of CPU for the ten cases (data, one process, two ranks)
@pytest.mark.parametrize("case", list(METHODS))
def test_two_ranks_with_half_the_batch_equal_one_process(runs, case):
    single = torch.load(runs / f"{case}.single.pt", weights_only=True)
    assert single["grads"], f"{case}: no gradient at all"
    for rank in range(WORLD):
        ranked = torch.load(runs / f"{case}.rank{rank}.pt", weights_only=True)
        torch.testing.assert_close(ranked["loss"], single["loss"], rtol=1e-9, atol=1e-9)
        assert ranked["grads"].keys() == single["grads"].keys()
        for name, grad in single["grads"].items():
            torch.testing.assert_close(ranked["grads"][name], grad, rtol=1e-9, atol=1e-9, msg=name)
        for name, state in single["queues"].items():
            for key, value in state.items():
                torch.testing.assert_close(ranked["queues"][name][key], value, rtol=1e-9, atol=1e-9)


@pytest.mark.slow  # two spawned training processes: about a minute on a busy machine
def test_zoo_fit_trains_a_shipped_recipe_on_two_cpu_processes(tmp_path, tiny_synth_data):
    generate_synth(Path(tiny_synth_data["synth_root"]), tiny_synth_data["synth"])  # before the ranks start
    override = tiny_fit_override(tmp_path, tiny_synth_data)
    ddp = ["--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu"]
    command = [
        sys.executable,
        "-m",
        "zoo.cli",
        "fit",
        "--config",
        str(CONFIGS / "simclr" / "synthmotion.yaml"),
    ]
    done = subprocess.run(
        [*command, "--config", str(override), *ddp], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed_backend=gloo" in done.stderr + done.stdout
    assert "All distributed processes registered. Starting with 2 processes" in done.stderr + done.stdout
    checkpoint = safe_torch_load(tmp_path / "ckpt" / "last.ckpt")
    assert checkpoint["global_step"] == 1  # 8 training clips, 4 a process: the ranks split the one epoch
