"""The documentation notebooks run top to bottom (offline, on the CPU) and show what they say."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "docs" / "notebooks").glob("*.ipynb"))

# Checks run in the notebook's kernel after its last cell (they are not saved in the notebook).
FIGURE_CHECKS = {
    "motionformer_synthmotion": """
_colorbars = [ax for ax in fig.axes if ax not in set(axes.flat)]
assert len(_colorbars) == 1 and "attention" in _colorbars[0].get_ylabel(), "the figure needs a colour bar"
assert [axes[0, t].get_title() for t in range(steps)] == [f"frame {t * tubelet}" for t in range(steps)]
for t in range(steps):  # the top row shows the frames its titles name
    assert (axes[0, t].get_images()[0].get_array() == video[t * tubelet].numpy()).all()
    assert axes[t + 1, 0].get_ylabel().split() == ["from", "frames", f"{t * tubelet}–{(t + 1) * tubelet - 1}"]
assert predictions[shown] == labels[shown] or not correct  # a correctly classified clip when there is one
assert verdict in fig._suptitle.get_text()
""",
}


def _outputs(notebook, kind: str) -> list:
    return [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == kind
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "data"))
    notebook = nbformat.read(path, as_version=4)
    if path.stem in FIGURE_CHECKS:
        notebook.cells.append(nbformat.v4.new_code_cell(FIGURE_CHECKS[path.stem]))
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = _outputs(notebook, "error")
    assert not errors, "\n".join(f"{e.ename}: {e.evalue}" for e in errors)
    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the notebook should draw the trajectory attention"


def test_model_card_displays_as_a_card(tmp_path, monkeypatch):
    """``model.card`` as a cell's result: Markdown for notebooks, and readable plain text, not a dataclass repr."""
    monkeypatch.setenv("ZOO_DATA", str(tmp_path / "data"))
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell('import zoo\nzoo.load("motionformer-tiny-synthmotion").card')]
    )
    NotebookClient(notebook, timeout=600, kernel_name="python3").execute()
    (result,) = _outputs(notebook, "execute_result")
    for kind in ("text/markdown", "text/plain"):
        text = result["data"][kind]
        assert text.startswith("# motionformer-tiny-synthmotion") and "- weights: shipped" in text, kind
        assert "CatalogEntry(" not in text


def test_there_is_a_notebook():
    assert NOTEBOOKS
