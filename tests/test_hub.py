"""Weight resolution against a loopback Hub/HTTP server (tests/hubserver.py): no real network is used."""

import hashlib
import json
import socket
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hubserver import HubServer

from zoo import hub
from zoo.catalog import CatalogEntry, FileSource, HubSource, UrlSource
from zoo.convert import register_converter
from zoo.errors import UsageError, WeightsFileError
from zoo.hub import (
    ChecksumError,
    IncompleteDownloadError,
    UnverifiedWeightsWarning,
    WeightsUnavailableError,
    download,
    download_url,
    load_folder,
    resolve,
    sha256_of,
)
from zoo.serialization import load_state_dict, read_metadata, save_state_dict

CONVERTER_CALLS: list[int] = []


@register_converter("zoo-test-double")
def _double(raw: dict) -> dict[str, torch.Tensor]:
    """A stand-in original format: weights under 'model_state' with an 'orig.' prefix, values halved."""
    CONVERTER_CALLS.append(1)
    return {k.replace("orig.", "net."): v * 2 for k, v in raw["model_state"].items()}


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the user's caches, offline switches or proxies."""
    for var in (
        "HF_HUB_OFFLINE",
        "ZOO_OFFLINE",
        "TRANSFORMERS_OFFLINE",
        "HF_ENDPOINT",
        "HF_HUB_CACHE",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path / "zoo_cache"))


@pytest.fixture
def server(monkeypatch):
    with HubServer() as srv:
        monkeypatch.setenv("HF_ENDPOINT", srv.url)
        yield srv


def entry(*weights, name="tiny-test") -> CatalogEntry:
    return CatalogEntry(name=name, arch="zoo_test_tinynet", weights=tuple(weights))


def safetensors_bytes(tmp_path: Path, state: dict[str, torch.Tensor]) -> bytes:
    path = save_state_dict(state, tmp_path / f"src-{len(list(tmp_path.iterdir()))}.safetensors")
    return path.read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def visible_files(folder: Path) -> list[str]:
    """Files a user would see in the cache (lock files are hidden dotfiles)."""
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
    )


# --- Hub sources ---------------------------------------------------------------------------------


def test_hub_download_verify_and_cache_hit(server, tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3)}
    data = safetensors_bytes(tmp_path, state)
    commit = server.commit("zoo-test/tiny", {"model.safetensors": data})
    e = entry(HubSource("zoo-test/tiny", sha256=sha(data)))

    path = resolve(e, cache_dir=tmp_path / "c", progress=False)
    assert path.is_relative_to(tmp_path / "c" / "hub") and commit in path.parts
    assert torch.equal(load_state_dict(path)["w"], state["w"])
    assert [(r.method, r.path) for r in server.requests] == [
        ("HEAD", "/zoo-test/tiny/resolve/main/model.safetensors"),
        ("GET", "/zoo-test/tiny/resolve/main/model.safetensors"),
    ]
    assert resolve(e, cache_dir=tmp_path / "c", progress=False) == path
    assert [r.method for r in server.requests[2:]] == ["HEAD"]  # cached: metadata only


def test_hub_default_cache_follows_hf_home(server, tmp_path, monkeypatch):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(2)})
    server.commit("zoo-test/tiny", {"model.safetensors": data})
    monkeypatch.setenv("HF_HOME", str(tmp_path / "elsewhere"))
    path = resolve(entry(HubSource("zoo-test/tiny", sha256=sha(data))), progress=False)
    assert path.is_relative_to(tmp_path / "elsewhere" / "hub")


def test_hub_revision_from_catalog_and_override(server, tmp_path):
    old = safetensors_bytes(tmp_path, {"w": torch.zeros(3)})
    new = safetensors_bytes(tmp_path, {"w": torch.ones(3)})
    main_commit = server.commit("zoo-test/tiny", {"model.safetensors": old})
    server.commit("zoo-test/tiny", {"model.safetensors": new}, branch="v2")
    e = entry(HubSource("zoo-test/tiny", revision="v2", sha256=sha(new)))

    assert torch.equal(load_state_dict(resolve(e, progress=False))["w"], torch.ones(3))
    # Another revision is not checked against the catalog's hash (it is for v2) but recorded.
    with pytest.warns(UnverifiedWeightsWarning, match=main_commit):
        path = resolve(e, revision=main_commit, progress=False)
    assert torch.equal(load_state_dict(path)["w"], torch.zeros(3))
    assert server.log("GET", f"/resolve/{main_commit}/")


@pytest.mark.parametrize("switch", ["HF_HUB_OFFLINE", "ZOO_OFFLINE"])
def test_offline_with_warm_cache_makes_no_request(server, tmp_path, monkeypatch, switch):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(2)})
    server.commit("zoo-test/tiny", {"model.safetensors": data})
    e = entry(HubSource("zoo-test/tiny", sha256=sha(data)))
    online = resolve(e, progress=False)
    seen = len(server.requests)
    monkeypatch.setenv(switch, "1")
    assert resolve(e, progress=False) == online
    assert len(server.requests) == seen


def test_offline_with_empty_cache_is_one_clear_error(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    url = f"{server.url}/files/orig/k400.pyth"
    e = entry(
        HubSource("zoo-test/tiny"), UrlSource(url, format="zoo-test-double", sha256="a" * 64), name="mf-k400"
    )
    with pytest.raises(WeightsUnavailableError) as err:
        resolve(e, progress=False)
    text = str(err.value)
    hub_dir, zoo_dir = tmp_path / "hf_home" / "hub", tmp_path / "zoo_cache"
    for needle in (
        "'mf-k400'",
        "HF_HUB_OFFLINE=1",
        "zoo-test/tiny@main: model.safetensors",
        url,
        "`zoo download mf-k400`",
        str(hub_dir),
        str(zoo_dir),
        "a" * 64,
        'zoo.load("/path/to/folder")',
    ):
        assert needle in text, needle
    port = server.url.rsplit(":", 1)[1]
    url_hash = hashlib.sha256(url.encode()).hexdigest()[:16]
    assert str(zoo_dir / "downloads" / f"127.0.0.1_{port}" / url_hash / "k400.pyth") in text
    assert [what for what, _ in err.value.tried] == [
        "hub zoo-test/tiny@main: model.safetensors",
        f"url {url} (zoo-test-double)",
    ]
    assert server.requests == []


def test_lost_network_with_warm_cache_uses_the_cache(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(2)})
    server.commit("zoo-test/tiny", {"model.safetensors": data})
    e = entry(HubSource("zoo-test/tiny", sha256=sha(data)))
    online = resolve(e, progress=False)
    server.close()  # HF_ENDPOINT now points at a closed port
    assert resolve(e, progress=False) == online


def test_no_network_is_reported_not_retried(tmp_path, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", dead)
    e = entry(HubSource("zoo-test/tiny"), UrlSource(f"{dead}/files/w.safetensors"))
    with pytest.raises(WeightsUnavailableError) as err:
        resolve(e, progress=False)
    (_, hub_reason), (_, url_reason) = err.value.tried
    assert "cannot be reached" in hub_reason and "cannot connect" in url_reason
    assert visible_files(tmp_path / "zoo_cache") == [] if (tmp_path / "zoo_cache").exists() else True


def test_hub_checksum_mismatch_deletes_the_cached_file(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(2)})
    server.commit("zoo-test/tiny", {"model.safetensors": data})
    with pytest.raises(ChecksumError) as err:
        resolve(entry(HubSource("zoo-test/tiny", sha256="b" * 64)), cache_dir=tmp_path / "c", progress=False)
    assert err.value.expected == "b" * 64 and err.value.actual == sha(data)
    assert "b" * 64 in str(err.value) and sha(data) in str(err.value)
    repo = tmp_path / "c" / "hub" / "models--zoo-test--tiny"
    assert not list((repo / "blobs").iterdir())
    assert not [p for p in (repo / "snapshots").rglob("*") if not p.is_dir()]


@pytest.mark.parametrize(
    ("repo", "error"), [("zoo-test/tiny", "EntryNotFound"), ("zoo-test/absent", "RepoNotFound")]
)
def test_missing_hub_file_falls_back_to_url(server, tmp_path, repo, error):
    server.commit("zoo-test/tiny", {"README.md": b"no weights yet"})
    data = safetensors_bytes(tmp_path, {"w": torch.ones(2)})
    url = server.add_file("w.safetensors", data)
    path = resolve(entry(HubSource(repo), UrlSource(url, sha256=sha(data))), progress=False)
    assert path.read_bytes() == data and path.is_relative_to(tmp_path / "zoo_cache" / "downloads")
    assert server.log("HEAD", f"/{repo}/resolve/main/model.safetensors")[0].status == 404


# --- URL sources ---------------------------------------------------------------------------------


def test_truncated_download_keeps_part_and_resumes_with_range(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.randn(64, 64)})
    url = server.add_file("big.safetensors", data)
    server.cut_after("big.safetensors", 5000)
    dest = tmp_path / "dl" / "big.safetensors"

    with pytest.raises(IncompleteDownloadError) as err:
        download_url(url, dest, sha256=sha(data), progress=False)
    part = dest.with_name("big.safetensors.part")
    assert err.value.received == 5000 and err.value.expected == len(data)
    assert str(part) in str(err.value) and "resumes" in str(err.value)
    assert not dest.exists() and part.stat().st_size == 5000

    assert download_url(url, dest, sha256=sha(data), progress=False) == dest
    last = server.log("GET", "big.safetensors")[-1]
    assert (last.range, last.status) == ("bytes=5000-", 206)
    assert sha256_of(dest) == sha(data) and not part.exists()


def test_partial_file_of_unknown_origin_is_discarded(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(8)})
    url = server.add_file("w.safetensors", data)
    dest = tmp_path / "dl" / "w.safetensors"
    dest.parent.mkdir()
    dest.with_name("w.safetensors.part").write_bytes(data[:100])  # no stored validator: unknown origin
    assert download_url(url, dest, sha256=sha(data), progress=True) == dest
    assert dest.read_bytes() == data
    assert [(r.range, r.status) for r in server.log("GET")] == [(None, 200)]
    assert visible_files(dest.parent) == ["w.safetensors"]


def test_resolve_reports_truncation_then_resumes(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.randn(64, 64)})
    url = server.add_file("w.safetensors", data)
    server.cut_after("w.safetensors", 1234)
    e = entry(UrlSource(url, sha256=sha(data)))
    with pytest.raises(WeightsUnavailableError, match="stopped after 1234 of"):
        resolve(e, progress=False)
    path = resolve(e, progress=False)
    assert path.read_bytes() == data and server.log("GET")[-1].range == "bytes=1234-"


def test_wrong_sha256_deletes_download_and_leaves_no_final_file(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(4)})
    url = server.add_file("w.safetensors", data)
    with pytest.raises(ChecksumError) as err:
        resolve(entry(UrlSource(url, sha256="c" * 64)), progress=False)
    assert err.value.expected == "c" * 64 and err.value.actual == sha(data) and err.value.deleted
    assert err.value.path.endswith("w.safetensors") and "w.safetensors" in str(err.value)
    assert visible_files(tmp_path / "zoo_cache") == []


def test_unhashed_url_is_recorded_then_enforced(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(4)})
    url = server.add_file("w.safetensors", data)
    e = entry(UrlSource(url))
    with pytest.warns(UnverifiedWeightsWarning, match="unverified"):
        path = resolve(e, progress=False)
    recorded = json.loads((tmp_path / "zoo_cache" / "recorded_sha256.json").read_text())
    assert recorded == {url: {"sha256": sha(data), "entry": "tiny-test"}}

    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # corrupted in the cache
    with pytest.raises(ChecksumError, match=r"recorded_sha256\.json"):
        resolve(e, progress=False)
    assert not path.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the record exists: no new warning
        assert resolve(e, progress=False).read_bytes() == data


@pytest.mark.parametrize("hashed", [True, False])
def test_conversion_runs_once_and_is_reused_offline(server, tmp_path, monkeypatch, hashed):
    original = tmp_path / "orig.pyth"
    torch.save({"epoch": 3, "model_state": {"orig.w": torch.tensor([1.0, 2.0])}}, original)
    url = server.add_file("orig.pyth", original.read_bytes())
    digest = sha256_of(original)
    e = entry(UrlSource(url, format="zoo-test-double", sha256=digest if hashed else None), name="tiny-conv")
    CONVERTER_CALLS.clear()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedWeightsWarning)
        first = resolve(e, progress=False)
    second = resolve(e, progress=False)
    assert first == second == tmp_path / "zoo_cache" / "converted" / f"tiny-conv-{digest[:12]}.safetensors"
    assert len(CONVERTER_CALLS) == 1
    assert torch.equal(load_state_dict(first)["net.w"], torch.tensor([2.0, 4.0]))
    assert read_metadata(first)["source_sha256"] == digest

    # The converted file is enough: no original, no network.
    next(p for p in (tmp_path / "zoo_cache" / "downloads").rglob("orig.pyth")).unlink()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    seen = len(server.requests)
    assert resolve(e, progress=False) == first
    assert len(CONVERTER_CALLS) == 1 and len(server.requests) == seen


def test_concurrent_resolves_download_and_convert_once(server, tmp_path):
    original = tmp_path / "orig.pyth"
    torch.save({"model_state": {"orig.w": torch.ones(3)}}, original)
    url = server.add_file("orig.pyth", original.read_bytes())
    e = entry(UrlSource(url, format="zoo-test-double", sha256=sha256_of(original)), name="tiny-ranks")
    CONVERTER_CALLS.clear()
    with ThreadPoolExecutor(max_workers=3) as pool:
        paths = list(pool.map(lambda _: resolve(e, progress=False), range(3)))
    assert len(set(paths)) == 1 and len(CONVERTER_CALLS) == 1
    assert len(server.log("GET", "orig.pyth")) == 1


# --- local files and folders ---------------------------------------------------------------------


def test_file_source_absolute_and_package_relative(tmp_path):
    path = save_state_dict({"w": torch.ones(2)}, tmp_path / "local.safetensors")
    assert resolve(entry(FileSource(str(path), sha256=sha256_of(path))), progress=False) == path
    with pytest.raises(ChecksumError) as err:
        resolve(entry(FileSource(str(path), sha256="d" * 64)), progress=False)
    assert path.exists() and not err.value.deleted  # not the cache's file: left alone
    with pytest.raises(WeightsUnavailableError) as err:
        resolve(entry(FileSource("weights/absent.safetensors")), progress=False)
    assert str(hub.PACKAGE_DIR / "weights" / "absent.safetensors") in str(err.value)


def test_download_by_catalog_name(make_catalog, tmp_path):
    path = save_state_dict({"w": torch.ones(2)}, tmp_path / "local.safetensors")
    make_catalog({"tiny-local": {"arch": "zoo_test_tinynet", "weights": [{"file": {"path": str(path)}}]}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a local file without sha256 is used as is, not recorded
        assert download("tiny-local", progress=False) == path
    assert not (tmp_path / "zoo_cache" / "recorded_sha256.json").exists()


def test_load_folder_checks_config_and_hash(tmp_path):
    folder = tmp_path / "pub"
    weights = save_state_dict({"w": torch.arange(3.0)}, folder / "model.safetensors")
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_folder(folder)
    (folder / "config.json").write_text(json.dumps({"arch": "a", "weights_sha256": sha256_of(weights)}))
    config, state = load_folder(folder)
    assert config["arch"] == "a" and torch.equal(state["w"], torch.arange(3.0))
    (folder / "config.json").write_text(json.dumps({"arch": "a", "weights_sha256": "e" * 64}))
    with pytest.raises(ChecksumError):
        load_folder(folder)
    assert weights.exists()


# --- what may not be trusted silently --------------------------------------------------------------


def test_resume_after_upstream_change_restarts_instead_of_splicing(server, tmp_path):
    old = safetensors_bytes(tmp_path, {"w": torch.zeros(64, 64)})
    new = safetensors_bytes(tmp_path, {"w": torch.ones(64, 64)})
    assert len(old) == len(new)
    url = server.add_file("w.safetensors", old)
    server.cut_after("w.safetensors", 5000)
    dest = tmp_path / "dl" / "w.safetensors"
    with pytest.raises(IncompleteDownloadError):
        download_url(url, dest, progress=False)
    server.add_file("w.safetensors", new)  # changed upstream between the two attempts

    assert download_url(url, dest, progress=False).read_bytes() == new
    last = server.log("GET", "w.safetensors")[-1]
    assert (last.range, last.status) == ("bytes=5000-", 200)  # asked to resume, got the whole new file


def test_partial_file_without_validator_is_not_kept(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.randn(64, 64)})
    url = server.add_file("w.safetensors", data)
    server.without_validators.add("w.safetensors")
    server.cut_after("w.safetensors", 5000)
    dest = tmp_path / "dl" / "w.safetensors"
    with pytest.raises(IncompleteDownloadError, match="starts over") as err:
        download_url(url, dest, progress=False)
    assert not err.value.resumable and visible_files(dest.parent) == []
    assert download_url(url, dest, progress=False).read_bytes() == data
    assert server.log("GET")[-1].range is None


@pytest.fixture
def other_host():
    """A second server on another loopback address (127.0.0.2 answers on Linux)."""
    with HubServer(host="127.0.0.2") as srv:
        yield srv


def test_cross_host_redirect_is_refused_without_a_catalog_sha256(server, other_host, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(4)})
    target = other_host.add_file("w.safetensors", data)
    url = server.redirect("w.safetensors", target)
    with pytest.raises(WeightsUnavailableError) as err:
        resolve(entry(UrlSource(url)), progress=False)
    text = str(err.value)
    assert "127.0.0.1:" in text and "127.0.0.2:" in text and "another host" in text
    assert other_host.requests == [] and not (tmp_path / "zoo_cache" / "recorded_sha256.json").exists()
    with pytest.raises(hub.UntrustedRedirectError):
        download_url(url, tmp_path / "dl" / "w.safetensors", progress=False)


def test_cross_host_redirect_is_followed_for_a_pinned_file(server, other_host, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(4)})
    url = server.redirect("w.safetensors", other_host.add_file("w.safetensors", data))
    assert resolve(entry(UrlSource(url, sha256=sha(data))), progress=False).read_bytes() == data
    same_host = server.redirect("moved.safetensors", server.add_file("w2.safetensors", data))
    with pytest.warns(UnverifiedWeightsWarning):  # a redirect on the same host is followed, then recorded
        assert resolve(entry(UrlSource(same_host)), progress=False).read_bytes() == data


def test_trickled_body_is_abandoned(server, tmp_path, monkeypatch):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(64)})
    url = server.add_file("w.safetensors", data)
    server.trickles["w.safetensors"] = 0.02  # ~50 bytes/s, for ever
    monkeypatch.setenv("ZOO_DOWNLOAD_MIN_RATE", "1000")
    monkeypatch.setenv("ZOO_DOWNLOAD_WINDOW", "0.4")
    with pytest.raises(hub.StalledDownloadError, match="ZOO_DOWNLOAD_MIN_RATE") as err:
        download_url(url, tmp_path / "dl" / "w.safetensors", progress=False)
    assert 0 < err.value.received < len(data)


def test_stall_guard_settings_are_checked(monkeypatch):
    monkeypatch.setenv("ZOO_DOWNLOAD_WINDOW", "soon")
    with pytest.raises(UsageError, match="ZOO_DOWNLOAD_WINDOW"):
        hub.StallGuard.from_env()


@pytest.mark.parametrize("fmt", ["safetensors", "zoo-test-double"])
def test_short_content_length_is_neither_recorded_nor_cached(server, tmp_path, fmt):
    if fmt == "safetensors":
        data = safetensors_bytes(tmp_path, {"w": torch.ones(256)})
    else:
        torch.save({"model_state": {"orig.w": torch.ones(256)}}, tmp_path / "orig.pyth")
        data = (tmp_path / "orig.pyth").read_bytes()
    url = server.add_file("w.bin", data)
    server.short_lengths["w.bin"] = len(data) - 100  # a complete-looking HTTP answer, short by 100 bytes
    with pytest.raises(WeightsFileError, match="not recorded") as err:
        resolve(entry(UrlSource(url, format=fmt)), progress=False)
    assert "w.bin" in str(err.value)
    assert visible_files(tmp_path / "zoo_cache") == []  # no cached file, no record
    del server.short_lengths["w.bin"]
    with pytest.warns(UnverifiedWeightsWarning):
        assert resolve(entry(UrlSource(url, format=fmt)), progress=False).is_file()


def _converted_entry(server, tmp_path, hashed: bool):
    original = tmp_path / "orig.pyth"
    torch.save({"model_state": {"orig.w": torch.tensor([1.0, 2.0])}}, original)
    url = server.add_file("orig.pyth", original.read_bytes())
    digest = sha256_of(original)
    return entry(
        UrlSource(url, format="zoo-test-double", sha256=digest if hashed else None), name="tiny-conv"
    )


@pytest.mark.parametrize("damage", ["tamper", "truncate", "empty"])
def test_damaged_converted_file_is_rebuilt_from_the_original(server, tmp_path, damage):
    e = _converted_entry(server, tmp_path, hashed=True)
    converted = resolve(e, progress=False)
    good = converted.read_bytes()
    if damage == "tamper":
        save_state_dict({"net.w": torch.tensor([666.0, 4.0])}, converted, metadata=read_metadata(converted))
    else:
        converted.write_bytes(good[: len(good) // 2] if damage == "truncate" else b"")
    CONVERTER_CALLS.clear()
    with pytest.warns(UnverifiedWeightsWarning, match=str(converted)):
        assert resolve(e, progress=False) == converted
    assert len(CONVERTER_CALLS) == 1
    assert torch.equal(load_state_dict(converted)["net.w"], torch.tensor([2.0, 4.0]))


def test_tampered_converted_file_offline_without_original_is_not_used(server, tmp_path, monkeypatch):
    e = _converted_entry(server, tmp_path, hashed=True)
    converted = resolve(e, progress=False)
    save_state_dict({"net.w": torch.tensor([666.0, 4.0])}, converted)
    next((tmp_path / "zoo_cache" / "downloads").rglob("orig.pyth")).unlink()
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.warns(UnverifiedWeightsWarning, match=str(converted)), pytest.raises(WeightsUnavailableError):
        resolve(e, progress=False)
    assert not converted.exists()


def test_corrupt_provenance_file_is_named(server, tmp_path):
    data = safetensors_bytes(tmp_path, {"w": torch.ones(4)})
    url = server.add_file("w.safetensors", data)
    records = tmp_path / "zoo_cache" / "recorded_sha256.json"
    records.parent.mkdir(parents=True)
    records.write_text('{"truncated": ')
    with pytest.raises(hub.ProvenanceError) as err:
        resolve(entry(UrlSource(url)), progress=False)
    assert str(records) in str(err.value) and "Delete it" in str(err.value)
    assert isinstance(err.value, UsageError)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("https://example.org/w.pth", "http://example.org/w.pth"),
        ("https://example.org/a b/w.pth", "https://example.org/a_b/w.pth"),
        ("https://example.org/w.pth?v=1", "https://example.org/w.pth?v=2"),
    ],
)
def test_url_cache_paths_do_not_collide(tmp_path, a, b):
    from zoo.hub.cache import url_cache_path

    assert url_cache_path(a, tmp_path) != url_cache_path(b, tmp_path)
    assert url_cache_path(a, tmp_path).name == "w.pth"


def test_file_source_outside_the_package_is_refused():
    with pytest.raises(UsageError, match="leaves the zoo package"):
        resolve(entry(FileSource("../../../etc/passwd")), progress=False)


# --- hf-hub: published folders on the Hub --------------------------------------------------------------


def _publish_to(server, tmp_path, tiny_arch, sha256: str | None = "auto", weights_file="model.safetensors"):
    state = {"body.weight": torch.randn(8, 4), "body.bias": torch.randn(8)}
    state |= {"head.weight": torch.randn(3, 8), "head.bias": torch.randn(3)}
    weights = safetensors_bytes(tmp_path, state)
    config = {
        "name": "tiny-pub",
        "arch": tiny_arch,
        "arch_args": {},
        "weights_file": weights_file,
        "entry": {"arch": tiny_arch, "license": "MIT"},
    }
    if sha256 is not None:
        config["weights_sha256"] = sha(weights) if sha256 == "auto" else sha256
    server.commit("zoo-org/tiny-pub", {"config.json": json.dumps(config).encode(), weights_file: weights})
    return state


def test_hf_hub_spec_loads_a_published_folder(server, tmp_path, tiny_arch):
    import zoo

    state = _publish_to(server, tmp_path, tiny_arch)
    model = zoo.load("hf-hub:zoo-org/tiny-pub")
    assert torch.equal(model.body.weight, state["body.weight"]) and model.card.entry.license == "MIT"
    net = zoo.create_model(tiny_arch, pretrained="hf-hub:zoo-org/tiny-pub", num_classes=5)
    assert torch.equal(net.body.bias, state["body.bias"]) and net.head.out_features == 5
    assert server.log("GET", "/zoo-org/tiny-pub/resolve/main/model.safetensors")


@pytest.mark.parametrize(("sha256", "error"), [(None, "no weights_sha256"), ("f" * 64, "sha256 mismatch")])
def test_hf_hub_folder_weights_are_verified(server, tmp_path, tiny_arch, sha256, error):
    import zoo

    _publish_to(server, tmp_path, tiny_arch, sha256=sha256)
    with pytest.raises((hub.UnsafeFolderError, ChecksumError), match=error):
        zoo.load("hf-hub:zoo-org/tiny-pub")


def test_hf_hub_spec_is_checked():
    import zoo

    with pytest.raises(UsageError, match="hf-hub:ORG/NAME"):
        zoo.load("hf-hub:no-slash")
