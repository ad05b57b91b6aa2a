"""`zoo fit|test` through the Lightning CLI on a tiny SynthMotion set, and config mistakes."""

import warnings

import pytest
import yaml
from lightning.pytorch import LightningDataModule

from zoo.cli import main
from zoo.errors import UsageError
from zoo.lightning_cli import ZooCLI


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


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def test_wrong_key_in_config_is_named(tmp_path, tiny_synth_data, capsys):
    bad = _config(tmp_path, tiny_synth_data)
    bad["model"]["init_args"]["learning_rate"] = 0.1  # VideoClassifier's argument is `lr`
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(bad))
    assert main(["fit", "--config", str(cfg)]) == 2
    err = _one_line_error(capsys)
    assert err.startswith("zoo fit: error:") and "learning_rate" in err and "VideoClassifier" in err


def test_wrong_config_path_is_one_line(tmp_path, capsys):
    missing = tmp_path / "no_such_recipe.yaml"
    assert main(["fit", "--config", str(missing)]) == 2
    err = _one_line_error(capsys)
    assert "config" in err and str(missing) in err


def test_wrong_value_names_the_key(tmp_path, tiny_synth_data, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path, tiny_synth_data)))
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs", "many"]) == 2
    err = _one_line_error(capsys)
    assert "trainer.max_epochs" in err and "many" in err and "NoneType" not in err


@pytest.mark.parametrize("argv", [["fit"], ["test", "--trainer.max_epochs", "1"]])
def test_lightning_command_without_recipe_asks_for_config(argv, capsys):
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert f"zoo {argv[0]} --config configs/" in err


def test_console_script_does_not_warn_about_args(tmp_path, tiny_synth_data, monkeypatch, capsys):
    """Run as `zoo fit ...`: the arguments are the process's own, and Lightning gets them as such."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path, tiny_synth_data)))
    monkeypatch.setattr("sys.argv", ["zoo", "fit", "--config", str(cfg), "--print_config"])
    with warnings.catch_warnings(record=True) as caught, pytest.raises(SystemExit) as exc:
        warnings.simplefilter("always")
        main()
    assert exc.value.code == 0
    assert "joint_tiny" in capsys.readouterr().out  # the config was parsed and printed
    assert not [w for w in caught if "args parameter" in str(w.message)]


class RefusingDataModule(LightningDataModule):
    """A DataModule that rejects its arguments the way zoo's do (a UsageError from __init__)."""

    def __init__(self, batch_size: int = 0):
        super().__init__()
        raise UsageError(f"VideoDataModule: batch_size must be positive, got {batch_size}")


def test_usage_error_while_instantiating_is_one_line(tmp_path, tiny_synth_data, capsys):
    config = _config(tmp_path, tiny_synth_data)
    config["data"] = {"class_path": f"{__name__}.RefusingDataModule"}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(cfg)]) == 2
    assert _one_line_error(capsys) == "zoo fit: error: VideoDataModule: batch_size must be positive, got 0"


def test_data_num_classes_is_linked_into_the_model(tmp_path, tiny_synth_data):
    """The head is built from the DataModule's class count when the model is constructed."""
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path, tiny_synth_data)))
    cli = ZooCLI(args=["--config", str(cfg)], run=False)
    assert cli.datamodule.num_classes == 2
    assert cli.model.hparams.num_classes == 2
    assert cli.model.model is not None and cli.model.model.num_classes == 2


class ClasslessDataModule(LightningDataModule):
    """Data that does not know its classes (no ``num_classes`` attribute)."""

    def __init__(self, batch_size: int = 1):
        super().__init__()
        self.batch_size = batch_size


def test_model_keeps_its_num_classes_when_the_data_has_none(tmp_path, tiny_synth_data):
    config = _config(tmp_path, tiny_synth_data, num_classes=5)
    config["data"] = {"class_path": f"{__name__}.ClasslessDataModule"}
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(config))
    cli = ZooCLI(args=["--config", str(cfg)], run=False)
    assert cli.model.hparams.num_classes == 5


def test_unknown_init_from_is_one_line(tmp_path, tiny_synth_data, capsys):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump(_config(tmp_path, tiny_synth_data, init_from="motionformer-k4000")))
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown checkpoint 'motionformer-k4000'" in err[0]
