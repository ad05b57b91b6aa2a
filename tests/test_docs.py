"""The documentation tells the truth: its snippets run, its docstrings build, its tables match the code."""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# --- docstrings: one parameter per line (griffe, run strictly by the docs build, warns otherwise) -----

_SECTIONS = ("Args:", "Arguments:", "Parameters:", "Keyword Args:", "Other Parameters:", "Attributes:")
_SEVERAL_NAMES = re.compile(r"^\*{0,2}\w+(\s*,\s*\*{0,2}\w+)+\s*(\([^)]*\))?:(\s|$)")


def several_parameters_per_line(docstring: str) -> list[str]:
    """Lines of a Google-style parameter section that document several parameters at once."""
    found, indent = [], None
    for line in docstring.splitlines():
        text = line.strip()
        if text in _SECTIONS:
            indent = -1
            continue
        if indent is None or not text:
            continue
        depth = len(line) - len(line.lstrip())
        if indent == -1:
            indent = depth
        if depth < indent:
            indent = None
        elif depth == indent and _SEVERAL_NAMES.match(text):
            found.append(text)
    return found


def test_the_docstring_check_finds_several_parameters_on_one_line():
    doc = "Summary.\n\nArgs:\n    a, b: two at once.\n    c: one,\n        d, e: continuation, fine.\n"
    assert several_parameters_per_line(doc) == ["a, b: two at once."]


def test_docstrings_document_one_parameter_per_line():
    offenders = []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                docstring = ast.get_docstring(node)
                for line in several_parameters_per_line(docstring or ""):
                    offenders.append(f"{path.relative_to(ROOT)}:{getattr(node, 'name', '')}: {line}")
    assert not offenders, "document one parameter per line:\n" + "\n".join(offenders)


def test_ci_builds_the_docs_strictly_and_counts_warnings():
    """``mkdocs build --strict --quiet`` does not count warnings: the check could never fail."""
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "mkdocs build" in line]
    assert commands, ".ci/run does not build the docs"
    for command in commands:
        words = shlex.split(command, comments=True)
        assert "--strict" in words and "--quiet" not in words and "-q" not in words, command


# --- catalog honesty: every surface says where an entry's weights come from -------------------------

SHA = "0" * 64


def _hooks():
    """docs/hooks.py as a module (it is not part of the package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("zoo_docs_hooks", ROOT / "docs" / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def catalog_of_each_status(tiny_arch, make_catalog):
    """One catalog entry per weight status; returns name -> expected status."""
    make_catalog(
        {
            "tiny-shipped": {
                "arch": tiny_arch,
                "weights": [{"file": {"path": "w.safetensors", "sha256": SHA}}],
            },
            "tiny-hub": {"arch": tiny_arch, "weights": [{"hub": {"repo_id": "org/tiny", "sha256": SHA}}]},
            "tiny-url": {
                "arch": tiny_arch,
                "weights": [{"url": {"url": "https://example.org/t.pth", "format": "motionformer-pyth"}}],
            },
            "tiny-none": {"arch": tiny_arch, "weights": [], "notes": "Original: a TF checkpoint."},
        }
    )
    return {
        "tiny-shipped": "shipped",
        "tiny-hub": "Hub",
        "tiny-url": "original URL, unverified",
        "tiny-none": "none",
    }


def test_each_entry_states_its_weight_status(catalog_of_each_status):
    from zoo.catalog import catalog

    assert {name: entry.weight_status for name, entry in catalog().items()} == catalog_of_each_status


def test_list_models_pretrained_gives_only_entries_with_a_weight_source(catalog_of_each_status):
    import zoo

    assert zoo.list_models("tiny-*", pretrained=True) == ["tiny-hub", "tiny-shipped", "tiny-url"]


def test_zoo_models_table_states_weight_status(catalog_of_each_status, capsys):
    from zoo.cli import main

    assert main(["models", "tiny-*"]) == 0
    rows = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if "tiny-" in line}
    assert set(rows) == set(catalog_of_each_status)  # entries without weights are listed too
    for name, status in catalog_of_each_status.items():
        assert status in rows[name], rows[name]


def test_docs_model_table_states_weight_status(catalog_of_each_status):
    header, _, *rows = _hooks().model_table().splitlines()
    assert "weights" in header
    for name, status in catalog_of_each_status.items():
        (row,) = [r for r in rows if f"`{name}`" in r]
        assert f"| {status} |" in row


def test_card_states_weight_status(catalog_of_each_status):
    import zoo

    for name, status in catalog_of_each_status.items():
        assert f"- weights: {status} (" in zoo.card(name).to_markdown()
    assert "nothing to download" in zoo.card("tiny-none").to_markdown()


def test_no_download_advice_for_an_entry_without_source(catalog_of_each_status, capsys):
    import zoo
    from zoo.cli import main
    from zoo.hub import WeightsUnavailableError

    assert main(["download", "tiny-none"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no weight source" in err and "zoo card tiny-none" in err
    assert "network" not in err and "run `zoo download" not in err
    with pytest.raises(WeightsUnavailableError, match="nothing to download") as info:
        zoo.load("tiny-none")
    assert "network" not in str(info.value)


def test_download_advice_remains_where_it_can_work(catalog_of_each_status, monkeypatch):
    import zoo
    from zoo.hub import WeightsUnavailableError

    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(
        WeightsUnavailableError, match="on a machine with network access run `zoo download tiny-url`"
    ):
        zoo.load("tiny-url")


# --- the Python blocks of README.md and docs/*.md run as written -----------------------------------

DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(?P<reason>.*?)\s*-->$")


@dataclass
class Snippet:
    """A fenced Python block of a Markdown page; ``not_run`` is the reason given for not running it."""

    page: Path
    line: int
    code: str
    not_run: str | None = None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def python_snippets(page: Path) -> list[Snippet]:
    """The page's ```python blocks in order, each with its ``<!-- not-run: reason -->`` mark if any."""
    lines = page.read_text().splitlines()
    snippets, i = [], 0
    while i < len(lines):
        fence = lines[i].strip()
        if fence.startswith("```"):
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip().startswith("```"))
            if fence[3:].strip().lower() in ("python", "py"):
                previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
                mark = _NOT_RUN.match(previous)
                snippets.append(
                    Snippet(page, i + 1, "\n".join(lines[i + 1 : end]) + "\n", mark and mark["reason"])
                )
            i = end
        i += 1
    return snippets


def test_snippet_reader_sees_blocks_and_not_run_marks(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- not-run: needs a GPU -->\n\n```python\ncuda()\n```\n```bash\nls\n```\n"
    )
    first, second = python_snippets(page)
    assert (first.code, first.not_run, first.line) == ("x = 1\n", None, 2)
    assert (second.code, second.not_run) == ("cuda()\n", "needs a GPU")


@pytest.fixture(scope="module")
def synthmotion_clip(tmp_path_factory) -> Path:
    """A SynthMotion test clip, standing in for the docs' ``video.mp4``."""
    from zoo.data import synthmotion

    config = synthmotion.SynthMotionConfig(
        train_per_class=0, val_per_class=0, test_per_class=1, long_videos=0, reid_identities=0,
        audio=False, qa_per_clip=0,
    )  # fmt: skip
    root = synthmotion.generate(tmp_path_factory.mktemp("synth"), config, progress=False)
    return sorted((root / "videos" / "test").glob("*.mp4"))[0]


@pytest.mark.parametrize("page", DOC_PAGES, ids=[str(p.relative_to(ROOT)) for p in DOC_PAGES])
def test_doc_snippets_run(page, synthmotion_clip, tmp_path, monkeypatch, capsys):
    """Every Python block of the page runs verbatim, in order, in one namespace, in an empty folder."""
    import shutil

    snippets = python_snippets(page)
    monkeypatch.chdir(tmp_path)
    shutil.copy(synthmotion_clip, tmp_path / "video.mp4")
    namespace: dict = {"__name__": "__main__"}
    ran = 0
    for snippet in snippets:
        if snippet.not_run is not None:
            continue
        exec(compile(snippet.code, str(snippet), "exec"), namespace)  # a failure names page:line
        ran += 1
    with capsys.disabled():
        skipped = [f"{s} ({s.not_run})" for s in snippets if s.not_run is not None]
        print(f"\n{page.relative_to(ROOT)}: {ran} Python block(s) run, {len(skipped)} not run {skipped}")


def test_not_run_marks_give_a_reason_and_precede_a_python_block():
    marks, marked = 0, []
    for page in DOC_PAGES:
        marks += sum(bool(_NOT_RUN.match(line.strip())) for line in page.read_text().splitlines())
        marked += [s for s in python_snippets(page) if s.not_run is not None]
    assert all(s.not_run for s in marked), [str(s) for s in marked if not s.not_run]
    assert marks == len(marked), "a <!-- not-run: ... --> mark must come right before a ```python block"
    print(f"{len(marked)} documentation block(s) not run: " + "; ".join(f"{s}: {s.not_run}" for s in marked))


def test_the_readme_snippet_is_tested():
    assert any("zoo.load(" in s.code and s.not_run is None for s in python_snippets(ROOT / "README.md"))


# --- README claims: the methods table is generated from the code ---------------------------------------


def test_readme_methods_table_is_up_to_date():
    hooks = _hooks()
    readme = hooks.README.read_text()
    start, end = hooks.readme_methods_block(readme)
    assert readme[start:end].strip() == hooks.methods_table(), "stale table: run `python docs/hooks.py`"


def test_methods_table_lists_every_method_with_its_paper_and_checkpoints():
    from zoo.methods import method_classes

    rows = _hooks().methods_table().splitlines()[2:]
    classes = method_classes()
    assert {c.__name__ for c in classes} >= {"SimCLR", "VideoClassifier"}
    assert len(rows) == len(classes)
    (simclr,) = [r for r in rows if "`zoo.methods.simclr.SimCLR`" in r]
    assert "arxiv.org/abs/2002.05709" in simclr and "`simclr/synthmotion`" in simclr
    assert "4 without weights" in simclr  # the SimCLR catalog entries list no weight source


def test_readme_claims_only_what_exists():
    from zoo.methods import method_classes

    readme = (ROOT / "README.md").read_text()
    for absent in ("GDT", "STiCA", "SeLaVi", "XDC", "CMD", "TOT", "DSM", "optimal-transport"):
        if re.search(rf"\b{re.escape(absent)}\b", readme):
            assert any(absent.lower() in c.__name__.lower() for c in method_classes()), absent


def test_readme_first_screen_has_exactly_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    first_bash = readme[
        readme.index("```bash") + len("```bash") : readme.index("```", readme.index("```bash") + 7)
    ]
    commands = [line for line in first_bash.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert commands == [
        "pip install torch==2.13.0 -e . && zoo quickstart",
        'pip install torch==2.13.0 -e ".[dev]" && pytest',
    ]
