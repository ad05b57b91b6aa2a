"""`zoo fit|test` through the Lightning CLI on a tiny SynthMotion set, and config mistakes."""

import pytest
import yaml

from zoo.cli import main


def _config(tmp_path, data, **model_args):
    return {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 1,
            "default_root_dir": str(tmp_path / "run"),
            "enable_checkpointing": False,
            "logger": False,
            "enable_progress_bar": False,
        },
        "model": {
            "class_path": "VideoClassifier",
            "init_args": {
                "backbone": "joint_tiny",
                "backbone_args": {"img_size": 32, "num_frames": 4},
                **model_args,
            },
        },
        "data": {
            "class_path": "VideoDataModule",
            "init_args": {**data, "size": 32},
        },
    }


def test_fit_from_yaml(tmp_path, tiny_synth_data):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path, tiny_synth_data)))
    assert main(["fit", "--config", str(cfg)]) == 0
    assert (tmp_path / "run" / "config.yaml").is_file()  # the resolved config is saved next to the run


def test_wrong_key_in_config_is_named(tmp_path, tiny_synth_data, capsys):
    bad = _config(tmp_path, tiny_synth_data)
    bad["model"]["init_args"]["learning_rate"] = 0.1  # VideoClassifier's argument is `lr`
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(bad))
    with pytest.raises(SystemExit) as exc:
        main(["fit", "--config", str(cfg)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "learning_rate" in err and "Traceback" not in err


def test_unknown_init_from_is_one_line(tmp_path, tiny_synth_data, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path, tiny_synth_data, init_from="motionformer-k4000")))
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown checkpoint 'motionformer-k4000'" in err[0]
