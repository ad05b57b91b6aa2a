"""No dependency of zoo, direct or transitive, in any extra, requires torchvision.

torchvision's PyPI wheels link CUDA; once installed next to a CPU torch, ``import torchmetrics`` fails.
timm, litdata, MosaicML streaming and pytorchvideo all require it. The walk starts from every
requirement of pyproject.toml (the dependencies and every extra) and follows the Requires-Dist of the
installed distributions, keeping a requirement's conditional dependencies only for the extras it
asks for (``lightning`` is fine, ``lightning[all]`` pulls torchvision).
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
BANNED = {"torchvision", "timm", "litdata", "mosaicml-streaming", "pytorchvideo"}


def declared_requirements() -> list[str]:
    """Every requirement of pyproject.toml: the dependencies and each extra's."""
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    extras = project.get("optional-dependencies", {}).values()
    return [*project["dependencies"], *(r for extra in extras for r in extra)]


def _conditional(requirement: Requirement, extras: set[str]) -> bool:
    """Whether a Requires-Dist entry applies when its distribution is installed with ``extras``."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({"extra": extra}) for extra in {"", *extras})


def banned_chains(requirements: list[str], reached: set[str] | None = None) -> list[str]:
    """``a -> b -> torchvision`` for every path from ``requirements`` to a banned distribution.

    Args:
        requirements: requirement strings (PEP 508), as in pyproject.toml.
        reached: filled with the names of the installed distributions walked through.
    """
    reached = set() if reached is None else reached
    chains: list[str] = []
    seen: set[tuple[str, frozenset[str]]] = set()
    stack = [(Requirement(r), "") for r in requirements]
    while stack:
        requirement, path = stack.pop()
        name = canonicalize_name(requirement.name)
        if name == "zoo":  # zoo[extra] inside an extra: every extra is walked from pyproject.toml already
            continue
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        label = f"{path}{requirement.name}{extras}"
        if name in BANNED:
            chains.append(label)
            continue
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            requires = metadata.requires(requirement.name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed: its own requirements are unknown here (its name was checked above)
        reached.add(name)
        for entry in map(Requirement, requires):
            if _conditional(entry, set(requirement.extras)):
                stack.append((entry, f"{label} -> "))
    return chains


def test_declared_requirements_name_no_torchvision_user():
    names = {canonicalize_name(Requirement(r).name) for r in declared_requirements()}
    assert not names & BANNED


def test_no_installed_dependency_requires_torchvision():
    reached: set[str] = set()
    assert banned_chains(declared_requirements(), reached) == []
    assert {"torch", "lightning", "lightning-utilities", "torchmetrics"} <= reached  # the walk went deep


def test_the_walk_finds_torchvision_when_it_is_there():
    requirements = declared_requirements()
    assert banned_chains([*requirements, "torchvision>=0.16"]) == ["torchvision"]
    assert banned_chains([*requirements, "timm"]) == ["timm"]
    # through an installed distribution's extra: lightning[all] requires torchvision, plain lightning not
    assert "lightning[all] -> torchvision" in banned_chains([*requirements, "lightning[all]"])


def test_the_walk_follows_installed_distributions(tmp_path, monkeypatch):
    """Two levels down: a distribution that asks for lightning's `examples` extra."""
    info = tmp_path / "vision_helper-1.0.dist-info"
    info.mkdir()
    info.joinpath("METADATA").write_text(
        "Metadata-Version: 2.1\nName: vision-helper\nVersion: 1.0\n"
        'Requires-Dist: lightning[examples]\nRequires-Dist: pytorchvideo; extra == "video"\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert banned_chains(["vision-helper"]) == ["vision-helper -> lightning[examples] -> torchvision"]
    assert sorted(banned_chains(["vision-helper[video]"])) == [
        "vision-helper[video] -> lightning[examples] -> torchvision",
        "vision-helper[video] -> pytorchvideo",
    ]
