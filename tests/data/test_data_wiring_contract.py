"""Every batch of VideoDataModule, in every configuration it wires, fits the batch contract (check_batch)."""

from pathlib import Path

import pytest
from helpers import generate_synth, tiny_synth

from zoo.data.batch import check_batch
from zoo.data.datamodule import VideoDataModule

SYNTH = tiny_synth(
    num_frames=12, num_classes=2, train_per_class=4, val_per_class=2, test_per_class=2, languages=("en", "de"),
    audio=True,
)  # fmt: skip

CONFIGURATIONS = {
    "default": {},
    "views_audio_text": dict(audio=True, text=True, num_views=2, test_clips=2, test_crops=3),
    "distinct_views_audio": dict(audio=True, num_views=3, view_clips="distinct", audio_preset="gdt"),
    "captions_k_all_languages": dict(
        text=True, captions_per_video=3, eval_captions_per_video="all", languages=["en", "de"]
    ),
    "audio_front_end_from_fields": dict(
        audio=True,
        audio_front_end={"kind": "log_filterbank", "n_filters": 40, "window": 480, "hop": 240, "n_fft": 1024},
        audio_window={"seconds": 1.0},
        audio_augment={"freq_masks": 1, "freq_mask_param": 4},
    ),
    "device_transforms_audio_crops": dict(device_transforms=True, audio=True, test_clips=2, test_crops=3),
    # 12 frames = the clip (7) + 1 + a motion window of 4: a longer window would not fit (skipped)
    "compressed": dict(motion_vectors=True, keyframe=True, motion_offset=1, keyframe_reach=5),
}
REQUIRED = {
    "views_audio_text": {
        "train": ["video_views", "audio_views", "text"],
        "test": ["video_views", "audio_views"],
    },
    "distinct_views_audio": {"train": ["video_views", "audio_views", "audio_views_mask"], "val": ["audio"]},
    "captions_k_all_languages": {"train": ["text", "text_language"], "val": ["caption_to_video"]},
    "device_transforms_audio_crops": {"test": ["video_views", "audio_views", "audio_views_mask"]},
    "compressed": {"train": ["video", "motion_vectors", "keyframe"], "val": ["motion_vectors", "keyframe"]},
}


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory) -> Path:
    return generate_synth(tmp_path_factory.mktemp("synth"), SYNTH)


@pytest.mark.parametrize("name", sorted(CONFIGURATIONS))
def test_every_batch_fits_the_contract(synth_root, name):
    module = VideoDataModule(
        synth=SYNTH,
        synth_root=str(synth_root),
        num_frames=4,
        stride=2,
        size=16,
        batch_size=3,
        num_workers=0,
        drop_last=False,
        **CONFIGURATIONS[name],
    )
    module.setup("fit")
    module.setup("test")
    loaders = {"train": module.train_dataloader, "val": module.val_dataloader, "test": module.test_dataloader}
    for split, loader in loaders.items():
        batches = 0
        for batch in loader():
            if module.hparams.device_transforms:
                batch = module.apply_device_transform(batch, split)
            check_batch(batch, REQUIRED.get(name, {}).get(split, ["video"]), owner=f"{name}/{split}")
            batches += 1
        assert batches == -(-len(module.datasets[split]) // 3)
