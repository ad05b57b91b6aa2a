"""A checkpoint's card: what it is, where it comes from, how it scores (paper vs measured here)."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.catalog import CatalogEntry, FileSource, HubSource, Metric, UrlSource


def _fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"


_WEIGHT_STATUS_MEANING = {
    "shipped": "a file inside the package, works offline",
    "Hub": "downloaded from the Hugging Face Hub",
    "original URL": "the authors' file, downloaded and converted once",
    "none": "the catalog lists no source: nothing to download; the notes say where the original comes from",
}


@dataclass(frozen=True, repr=False)
class Card:
    """A checkpoint's card; prints (and displays in notebooks) as Markdown.

    Args:
        entry: the catalog entry the card describes.
    """

    entry: CatalogEntry

    @property
    def name(self) -> str:
        return self.entry.name

    def metric_rows(self) -> list[tuple[str, str, str, str]]:
        """(metric, dataset, paper, ours) rows; a missing side is '—'."""
        rows: dict[tuple[str, str], list[str]] = {}
        for side, metrics in ((0, self.entry.metrics.paper), (1, self.entry.metrics.measured)):
            for m in metrics:
                rows.setdefault((m.name, m.dataset or ""), ["—", "—"])[side] = _fmt(m.value)
        return [(name, ds, paper, ours) for (name, ds), (paper, ours) in rows.items()]

    def commands(self) -> list[Metric]:
        return [m for m in self.entry.metrics.measured if m.command]

    def sources(self) -> list[str]:
        out = []
        for s in self.entry.weights:
            if isinstance(s, HubSource):
                out.append(f"hub: {s.repo_id}/{s.filename}@{s.revision}")
            elif isinstance(s, UrlSource):
                out.append(f"url: {s.url} ({s.format})")
            elif isinstance(s, FileSource):
                out.append(f"file: {s.path}")
        return out

    def to_markdown(self) -> str:
        e, p = self.entry, self.entry.preprocess
        lines = [f"# {e.name}", ""]
        if e.notes:
            lines += [e.notes.strip(), ""]
        lines += [f"- architecture: `{e.arch}` {e.arch_args or ''}".rstrip(), f"- license: {e.license}"]
        lines.append(
            f"- weights: {e.weight_status} ({_WEIGHT_STATUS_MEANING[e.weight_status.split(',')[0]]})"
        )
        if e.weight_status.endswith("unverified"):
            lines.append(
                "  - no sha256 in the catalog yet: it is recorded on first download and checked after"
            )
        lines += [f"  - {source}" for source in self.sources()]
        if e.paper:
            lines.append(
                f"- paper: [{e.paper.title}]({e.paper.url})" if e.paper.url else f"- paper: {e.paper.title}"
            )
        lines += ["", "## Metrics", "", "| metric | dataset | paper | ours |", "|---|---|---|---|"]
        lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.metric_rows()] or ["| — | — | — | — |"]
        if self.commands():
            lines += ["", "Measured here with:", ""] + [f"- {m.name}: `{m.command}`" for m in self.commands()]
        lines += ["", "## Preprocessing", ""]
        lines += [f"- {k}: {v}" for k, v in p.to_dict().items() if v is not None]
        lines += ["", "## Usage", "", "```python", "import zoo"]
        if e.weights:
            lines.append(f'model = zoo.load("{e.name}")')
        else:  # no source zoo can fetch: the notes say how to make the file
            lines.append(f'model = zoo.create_model("{e.arch}", pretrained="converted.safetensors")')
        if p.modality == "video" and p.num_frames and p.size:
            lines.append(f'views = zoo.transform_for("{e.name}")("clip.mp4")  # (views, C, T, H, W)')
        lines.append("```")
        if e.paper and e.paper.bibtex:
            lines += ["", "## Citation", "", "```bibtex", e.paper.bibtex.strip(), "```"]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:  # consoles and plain-text notebook outputs show the card, not the dataclass
        return self.to_markdown()

    def _repr_markdown_(self) -> str:  # notebooks render the card
        return self.to_markdown()
