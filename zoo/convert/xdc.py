"""XDC video encoders (``HumamAlwassel/XDC``, MIT): the three XDC R(2+1)D-18 and the two supervised baselines.

The released ``.pth`` files are plain state dicts of the authors' R(2+1)D-18 (torchvision's
``VideoResNet`` with their own ``Conv2Plus1D``): torchvision's key names (``stem.{0,1,3,4}``,
``layerK.B.conv{1,2}.0.{0,1,3}``, ``layerK.B.conv{1,2}.1``, ``layerK.0.downsample.{0,1}``, ``fc``;
224 tensors with BatchNorm's ``num_batches_tracked``) but the VMZ middle widths, recomputed inside
every (2+1)D convolution: ``layer2.0.conv2`` has 288 middle channels (torchvision: 230), ``layer3.0.conv2``
576 (460), ``layer4.0.conv2`` 1152 (921). They are :func:`zoo.models.video_resnet.r2plus1d_18_vmz`'s keys
one for one, so the converter is an identity map that checks every key and shape, and names what it
found when a file is something else (a torchvision-layout R(2+1)D such as GDT's, a file of towers).
The ``fc`` of the files is not part of the released encoders (the authors load "all layers except the
FC"); it is kept whatever its size, and a catalog entry built without classifier drops it.

The Caffe2 ``.pkl`` blobs published beside them are another format, not read here.
"""

from __future__ import annotations

import torch

from zoo.convert import register_converter
from zoo.serialization import unwrap_state_dict

__all__ = ["convert_xdc", "xdc_layout"]

FORMAT = "xdc-pth"
CLASSIFIER = ("fc.weight", "fc.bias")
# where the two mid-plane rules differ: the second convolution of each downsampling block
VMZ_MIDPLANES = {
    "layer2.0.conv2.0.0.weight": 288,
    "layer3.0.conv2.0.0.weight": 576,
    "layer4.0.conv2.0.0.weight": 1152,
}
TOWER_PREFIXES = ("video_network.", "audio_network.", "model.", "backbone.", "encoder.", "module.")


def xdc_layout() -> dict[str, tuple[int, ...]]:
    """Key → shape of an XDC R(2+1)D-18 file (without ``fc``), from zoo's ``r2plus1d_18_vmz``."""
    from zoo.models.video_resnet import r2plus1d_18_vmz

    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        model = r2plus1d_18_vmz(num_classes=0)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@register_converter(FORMAT)
def convert_xdc(raw: dict) -> dict[str, torch.Tensor]:
    """An XDC ``.pth`` state dict → ``r2plus1d_18_vmz`` (keys checked one by one; ``fc`` kept)."""
    state = unwrap_state_dict(raw, source=f"{FORMAT} checkpoint")
    layout = xdc_layout()
    _explain_foreign(state, layout)
    missing = [k for k in layout if k not in state]
    unexpected = [k for k in state if k not in layout and k not in CLASSIFIER]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {layout[k]})"
        for k in layout
        if k in state and tuple(state[k].shape) != layout[k]
    ]
    problems = []
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if keys:
            problems.append(f"{len(keys)} {label}: {', '.join(keys[:6])}{' ...' if len(keys) > 6 else ''}")
    if problems:
        raise KeyError(f"{FORMAT}: not an XDC R(2+1)D-18 state dict; " + "; ".join(problems))
    return dict(state)


def _explain_foreign(state: dict[str, torch.Tensor], layout: dict[str, tuple[int, ...]]) -> None:
    """Name the two look-alikes: a file of several towers, and a torchvision-layout R(2+1)D-18."""
    prefixes = sorted({p for p in TOWER_PREFIXES for k in state if k.startswith(p)})
    if prefixes and not any(k in state for k in layout):
        raise KeyError(
            f"{FORMAT}: keys start with {prefixes} (e.g. {next(iter(state))}): a checkpoint of another method "
            "(GDT, STiCA and SeLaVi keep their towers under video_network. / audio_network.), not a bare XDC encoder"
        )
    for key, width in VMZ_MIDPLANES.items():
        if key in state and state[key].shape[0] != width:
            raise ValueError(
                f"{FORMAT}: {key} has {state[key].shape[0]} middle channels where XDC's VMZ R(2+1)D-18 has "
                f"{width}: a torchvision-layout R(2+1)D-18 (mid-planes per block, as GDT, STiCA and SeLaVi): "
                "load it as r2plus1d_18"
            )
