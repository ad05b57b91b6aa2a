import json
from typing import ClassVar

import pytest
import torch
import yaml
from helpers import TinyNet

from zoo import __version__
from zoo.catalog import HubSource, parse_entry
from zoo.cli import main
from zoo.errors import UsageError
from zoo.hub import load_folder, sha256_of
from zoo.publish import ApiCall, publish
from zoo.serialization import save_state_dict

BIBTEX = "@inproceedings{tiny2024,\n  title={A Tiny Paper},\n  year={2024}\n}"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    for var in ("HF_HUB_OFFLINE", "ZOO_OFFLINE", "HF_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo_cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))


@pytest.fixture
def published_entry(tiny_arch, make_catalog, tmp_path):
    """A catalog entry whose weights are a local safetensors file of a TinyNet."""
    torch.manual_seed(0)
    state = TinyNet(num_classes=3).state_dict()
    weights = save_state_dict(state, tmp_path / "src" / "tiny.safetensors")
    make_catalog(
        {
            "tiny-k400": {
                "arch": tiny_arch,
                "arch_args": {"num_classes": 3},
                "weights": [{"file": {"path": str(weights), "sha256": sha256_of(weights)}}],
                "verified": True,
                "preprocess": {"num_frames": 8, "size": 32},
                "metrics": {
                    "paper": [{"name": "top1", "value": 80.5, "dataset": "K400"}],
                    "measured": [
                        {"name": "top1", "value": 79.9, "dataset": "K400", "command": "zoo test -c x.yaml"}
                    ],
                },
                "license": "CC-BY-NC-4.0",
                "paper": {
                    "title": "A Tiny Paper",
                    "url": "https://arxiv.org/abs/0000.00000",
                    "bibtex": BIBTEX,
                },
                "notes": "A tiny test checkpoint.",
            }
        }
    )
    return state


class RecordingApi:
    """Stands in for huggingface_hub.HfApi and records every call."""

    instances: ClassVar[list["RecordingApi"]] = []

    def __init__(self, token=None):
        self.token, self.calls = token, []
        RecordingApi.instances.append(self)

    def create_repo(self, **kwargs):
        self.calls.append(("create_repo", kwargs))
        return f"https://hub.example/{kwargs['repo_id']}"

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return "commit-info"


class ForbiddenApi:
    def __init__(self, *args, **kwargs):
        raise AssertionError("a dry run must not touch the Hub")


def test_dry_run_writes_exactly_the_folder_and_plans_the_calls(published_entry, tmp_path, monkeypatch):
    monkeypatch.setattr("zoo.publish.HfApi", ForbiddenApi)
    out = tmp_path / "out"
    plan = publish("tiny-k400", "zoo-org/tiny-k400", out_dir=out, dry_run=True, progress=False)

    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert plan.files == {p.name: sha256_of(p) for p in out.iterdir()}
    assert plan.calls == [
        ApiCall("create_repo", {"repo_id": "zoo-org/tiny-k400", "repo_type": "model", "exist_ok": True}),
        ApiCall(
            "upload_folder",
            {
                "repo_id": "zoo-org/tiny-k400",
                "repo_type": "model",
                "folder_path": str(out),
                "commit_message": f"Publish tiny-k400 (zoo {__version__})",
            },
        ),
    ]
    assert plan.dry_run and plan.results == []
    assert "would call" in str(plan) and "HfApi().upload_folder(" in str(plan)

    config, state = load_folder(out)
    assert set(state) == set(published_entry)
    for key, value in published_entry.items():
        assert torch.equal(state[key], value), key
    assert config["arch"] == "zoo_test_tinynet" and config["arch_args"] == {"num_classes": 3}
    assert config["weights_sha256"] == plan.files["model.safetensors"]
    entry = parse_entry(config["name"], config["entry"])
    assert entry.weights[0] == HubSource("zoo-org/tiny-k400", sha256=plan.files["model.safetensors"])
    assert len(entry.weights) == 2  # the catalog's own source stays as provenance
    assert entry.preprocess.num_frames == 8 and entry.metrics.measured[0].command == "zoo test -c x.yaml"


def test_published_folder_loads_with_zoo_load(published_entry, tmp_path, monkeypatch):
    import zoo

    monkeypatch.setattr("zoo.publish.HfApi", ForbiddenApi)
    out = tmp_path / "out"
    publish("tiny-k400", "zoo-org/tiny-k400", out_dir=out, dry_run=True, progress=False)
    model = zoo.load(str(out))
    assert isinstance(model, TinyNet) and not model.training
    assert torch.equal(model.head.weight, published_entry["head.weight"])


def test_model_card(published_entry, tmp_path):
    out = tmp_path / "out"
    publish("tiny-k400", "zoo-org/tiny-k400", out_dir=out, dry_run=True, progress=False)
    text = (out / "README.md").read_text()
    _, front, body = text.split("---\n", 2)
    meta = yaml.safe_load(front)
    assert meta["license"] == "cc-by-nc-4.0" and meta["library_name"] == "zoo"
    assert meta["datasets"] == ["K400"] and "zoo_test_tinynet" in meta["tags"]
    assert "| top1 | K400 | 80.50 | 79.90 |" in body and "`zoo test -c x.yaml`" in body
    assert "| num_frames | 8 |" in body and BIBTEX in body and "A tiny test checkpoint." in body
    assert 'zoo.load("tiny-k400")' in body and 'snapshot_download("zoo-org/tiny-k400")' in body
    assert "## License" in body and "CC-BY-NC-4.0" in body


def test_model_card_metadata_reads_back_with_huggingface_hub(published_entry, tmp_path):
    from huggingface_hub import ModelCard

    out = tmp_path / "out"
    publish("tiny-k400", "zoo-org/tiny-k400", out_dir=out, dry_run=True, progress=False)
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "video-classification"  # TinyNet has a 3-way head
    assert "self-supervised" not in card.data.tags  # no self-supervised method trained it
    (result,) = card.data.eval_results  # the model-index carries the figure measured here, not the paper's
    assert (result.metric_type, result.metric_value, result.dataset_name) == ("top1", 79.9, "K400")
    assert result.task_type == "video-classification" and card.data.model_name == "tiny-k400"
    assert "model-index" in yaml.safe_load((out / "README.md").read_text().split("---\n")[1])


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_encoder_of_a_self_supervised_method_is_feature_extraction(tiny_arch, make_catalog, tmp_path):
    from huggingface_hub import ModelCard

    make_catalog({"simclr-tiny": {"arch": tiny_arch, "arch_args": {"num_classes": 0}, "license": "MIT"}})
    out = tmp_path / "out"
    publish("simclr-tiny", "o/simclr-tiny", out_dir=out, dry_run=True, model=TinyNet(num_classes=0))
    card = ModelCard.load(out / "README.md")
    assert card.data.pipeline_tag == "feature-extraction" and "self-supervised" in card.data.tags
    assert card.data.eval_results is None  # nothing measured here


def test_out_naming_a_file_is_one_line_error(published_entry, tmp_path, capsys):
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    assert main(["publish", "tiny-k400", "--repo-id", "o/r", "--out", str(existing), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(existing) in err and "is a file" in err
    assert existing.read_text() == "keep me"


def test_publish_refuses_to_write_through_a_symlink(published_entry, tmp_path, capsys):
    outside = tmp_path / "outside.md"
    outside.write_text("not yours")
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").symlink_to(outside)
    with pytest.raises(UsageError, match="symbolic link"):
        publish("tiny-k400", "o/r", out_dir=out, dry_run=True, progress=False)
    assert main(["publish", "tiny-k400", "--repo-id", "o/r", "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out / "README.md") in err
    assert outside.read_text() == "not yours"
    (out / "README.md").unlink()
    (out / "config.json").symlink_to(tmp_path)  # a link to a folder is refused too
    with pytest.raises(UsageError, match="symbolic link"):
        publish("tiny-k400", "o/r", out_dir=out, dry_run=True, progress=False)


@pytest.fixture
def failing_hub(monkeypatch):
    """A loopback server that answers every request with HTTP 500, as the Hub's endpoint."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _fail(self):
            self.send_response(500, "Internal Server Error")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_HEAD = _fail

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    yield
    server.shutdown()
    server.server_close()


def test_hub_server_failure_is_one_line_naming_the_repo(published_entry, tmp_path, failing_hub, capsys):
    assert main(["publish", "tiny-k400", "--repo-id", "zoo-org/tiny-k400", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "'zoo-org/tiny-k400'" in err and "create_repo failed" in err and "500" in err


def test_unreachable_hub_is_one_line_naming_the_repo(published_entry, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    assert main(["publish", "tiny-k400", "--repo-id", "zoo-org/tiny-k400", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'zoo-org/tiny-k400'" in err and "create_repo failed" in err


def test_upload_makes_the_planned_calls(published_entry, tmp_path, monkeypatch):
    RecordingApi.instances.clear()
    monkeypatch.setattr("zoo.publish.HfApi", RecordingApi)
    plan = publish("tiny-k400", "zoo-org/tiny-k400", out_dir=tmp_path / "out", token="hf_x", progress=False)
    (api,) = RecordingApi.instances
    assert api.token == "hf_x"
    assert api.calls == [(c.method, c.kwargs) for c in plan.calls]
    assert [m for m, _ in api.calls] == ["create_repo", "upload_folder"]
    assert plan.results == ["https://hub.example/zoo-org/tiny-k400", "commit-info"] and not plan.dry_run


def test_publish_a_given_model_and_refuse_misfits(published_entry, tmp_path):
    model = TinyNet(num_classes=3)
    plan = publish("tiny-k400", "o/r", out_dir=tmp_path / "a", dry_run=True, model=model, progress=False)
    _, state = load_folder(plan.folder)
    assert torch.equal(state["body.weight"], model.body.weight)
    config = json.loads((plan.folder / "config.json").read_text())
    assert config["name"] == "tiny-k400"
    assert [next(iter(s)) for s in config["entry"]["weights"]] == ["hub"]  # the catalog's file is other bytes

    with pytest.raises(ValueError, match=r"shape mismatch .*head\.weight"):
        publish("tiny-k400", "o/r", out_dir=tmp_path / "b", dry_run=True, model=TinyNet(num_classes=5))
    stray = tmp_path / "c"
    stray.mkdir()
    (stray / "notes.txt").write_text("private")
    with pytest.raises(UsageError, match=r"notes\.txt"):
        publish("tiny-k400", "o/r", out_dir=stray, dry_run=True, progress=False)
