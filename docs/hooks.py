"""mkdocs hooks: pages generated from the project's own files at build time."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _metrics(metrics: dict, side: str) -> str:
    return (
        "<br>".join(f"{m['name']} {m['value']} ({m.get('dataset', '')})" for m in metrics.get(side) or [])
        or "—"
    )


def _metrics(metrics: dict, side: str) -> str:
    items = metrics.get(side) or []
    return "<br>".join(f"{m['name']} {m['value']} ({m.get('dataset', '')})" for m in items) or "—"


def _model_table() -> str:
    entries = yaml.safe_load((ROOT / "checkpoints.yaml").read_text()) or {}
    rows = ["| name | architecture | input | paper | measured here | license |", "|---|---|---|---|---|---|"]
    for name, e in entries.items():
        prep = e.get("preprocess") or {}
        shape = (
            f"{prep.get('num_frames')}×{prep.get('size')}²"
            if prep.get("num_frames")
            else str(prep.get("size", "—"))
        )
        metrics = e.get("metrics") or {}

        rows.append(
            f"| `{name}` | `{e['arch']}` | {shape} | {_metrics(metrics, 'paper')} | {_metrics(metrics, 'measured')} | {e.get('license', '')} |"
        )
    return "\n".join(rows)


def _benchmarks() -> str:
    parts = []
    for path in sorted((ROOT / "docs" / "benchmarks").glob("*.md")):
        parts.append(path.read_text().strip())
    return "\n\n".join(parts) or "No benchmark has been run yet: `python benchmarks/<name>.py`."


def on_page_markdown(markdown: str, page, config, files) -> str:
    return markdown.replace("<!-- zoo:model-table -->", _model_table()).replace(
        "<!-- zoo:benchmarks -->", _benchmarks()
    )
