import subprocess
import sys

import pytest
import yaml

from zoo.cli import main


def test_models_table_lists_architectures(tiny_arch, capsys):
    assert main(["models", "--arch", "zoo_test_*"]) == 0
    out = capsys.readouterr().out
    assert tiny_arch in out and "params" in out


def test_models_table_lists_catalog(tiny_arch, make_catalog, capsys):
    make_catalog(
        {
            "tiny-demo": {
                "arch": tiny_arch,
                "license": "MIT",
                "preprocess": {"size": 4},
                "metrics": {"paper": [{"name": "top1", "value": 50.0, "dataset": "toy"}]},
            }
        }
    )
    assert main(["models", "tiny*"]) == 0
    out = capsys.readouterr().out
    assert "tiny-demo" in out and "MIT" in out and "top1 50" in out


def test_no_match_says_so(capsys):
    assert main(["models", "no_such_model*"]) == 1
    assert "no models match" in capsys.readouterr().out


def test_unknown_checkpoint_is_one_line(capsys, make_catalog, tiny_arch):
    make_catalog({"tiny-demo": {"arch": tiny_arch}})
    assert main(["card", "tiny-dmeo"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown checkpoint 'tiny-dmeo'" in err and "tiny-demo" in err


def test_validate_reports_entry_and_field(tmp_path, capsys, tiny_arch):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"x": {"arch": tiny_arch, "preprocess": {"num_frames": "many"}}}))
    assert main(["checkpoints", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "entry 'x'" in err and "preprocess.num_frames" in err and "Traceback" not in err


def test_validate_names_a_misspelt_converter(tmp_path, capsys, tiny_arch):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        yaml.safe_dump(
            {
                "x": {
                    "arch": tiny_arch,
                    "weights": [{"url": {"url": "https://example.org/w.pyth", "format": "motionformer-pth"}}],
                }
            }
        )
    )
    assert main(["checkpoints", "validate", str(bad)]) == 2
    assert "motionformer-pyth" in capsys.readouterr().err  # the suggestion


def test_validate_packaged_catalog(capsys):
    assert main(["checkpoints", "validate"]) == 0
    assert "entries valid" in capsys.readouterr().out


def test_console_script_help():
    out = subprocess.run(
        [sys.executable, "-m", "zoo.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("models", "download", "convert", "publish", "checkpoints", "data", "eval", "fit"):
        assert command in out.stdout


@pytest.mark.parametrize("argv", [["download"], ["convert", "fmt"]])
def test_missing_arguments_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_export_writes_the_backbone(tmp_path, tiny_arch):
    import torch

    from zoo.registry import build
    from zoo.serialization import load_state_dict

    net = build(tiny_arch)
    ckpt = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in net.state_dict().items()}, "epoch": 3}, ckpt)
    out = tmp_path / "backbone.safetensors"
    assert main(["export", str(ckpt), str(out)]) == 0
    exported = load_state_dict(out)
    assert exported.keys() == net.state_dict().keys()
    assert all(torch.equal(exported[k], v) for k, v in net.state_dict().items())
    assert main(["export", str(ckpt), str(out), "--prefix", "encoder."]) == 2
    torch.save({"weights": torch.zeros(1)}, ckpt)  # not a Lightning checkpoint
    assert main(["export", str(ckpt), str(out)]) == 2


def test_eval_on_a_foreign_checkpoint_is_one_line(tmp_path, capsys):
    import torch

    ckpt = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}}, ckpt)
    assert main(["eval", "knn", "--model", str(ckpt)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a zoo method checkpoint" in err[0]


@pytest.mark.parametrize("group, subcommand", [("checkpoints", "validate"), ("eval", "clustering")])
def test_group_alone_prints_its_help(group, subcommand, capsys):
    assert main([group]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: zoo {group}") and subcommand in out


# `python -c`: run `zoo ARGS` in a fresh interpreter, then report whether Lightning (or torch) was imported
_REPORT_IMPORTS = """
import sys
from zoo.cli import main
code = main(sys.argv[1:])
print("lightning" in sys.modules, "torch" in sys.modules)
sys.exit(code)
"""


@pytest.mark.parametrize(
    "argv, torch_needed",
    [
        (["card", "motionformer-k4000"], False),
        (["download", "motionformer-k4000"], True),
        (["eval", "knn", "--model", "no_such_model"], True),
    ],
)
def test_user_errors_do_not_import_lightning(argv, torch_needed):
    done = subprocess.run(
        [sys.executable, "-c", _REPORT_IMPORTS, *argv], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"zoo {argv[0]}: error: unknown ")
    lightning, torch = done.stdout.split()
    assert lightning == "False"
    if not torch_needed:
        assert torch == "False"  # the catalog alone answers `zoo card`


def test_models_table_names_a_missing_extra_instead_of_failing(monkeypatch, capsys):
    from zoo import registry
    from zoo.models.text import MissingExtraError

    def count(name, **kwargs):
        if name == "text_encoder":
            raise MissingExtraError("text encoders need the `transformers` package: pip install 'zoo[text]'")
        return 1_000_000

    monkeypatch.setattr(registry, "count_parameters", count)
    assert main(["models", "--arch", "*"]) == 0
    out = capsys.readouterr().out
    assert "zoo[text]" in out and "r3d_tiny" in out
