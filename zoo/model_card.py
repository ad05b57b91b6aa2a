"""A checkpoint's card: what it is, where it comes from, how it scores (paper vs measured here)."""

from __future__ import annotations

from dataclasses import dataclass

from zoo.catalog import CatalogEntry, FileSource, HubSource, Metric, UrlSource


def _fmt(value: float) -> str:
    return f"{value:.2f}" if abs(value) >= 1 else f"{value:.4f}"


_TOWER_INPUT = {  # what each tower's transform reads, and the batch it makes
    "video": '("clip.mp4")  # (views, C, T, H, W)',
    "image": '("clip.mp4")  # (views, C, T, H, W)',
    "audio": '("clip.mp4")[None]  # (1, 1, F, S)',
    "text": '(["a caption"])  # input_ids, attention_mask (1, L)',
}


def _human(count: int) -> str:
    return f"{count / 1e6:.1f}M" if count >= 1e5 else f"{count / 1e3:.1f}K"


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

    def tower_rows(self) -> list[tuple[str, str, str, str, str]]:
        """(tower, architecture, parameters, keys in the file, preprocessing) rows; empty for one architecture."""
        from zoo.registry import count_parameters

        rows = []
        for modality, t in self.entry.towers.items():
            arch = f"`{t.arch}` {t.arch_args or ''}".rstrip()
            params = _human(count_parameters(t.arch, **t.arch_args))
            fields = t.preprocess.to_dict().items()
            prep = ", ".join(f"{k}: {v}" for k, v in fields if v is not None and k != "modality")
            rows.append((modality, arch, params, f"`{t.prefix}*`", prep))
        return rows

    def _usage(self) -> list[str]:
        e, p = self.entry, self.entry.preprocess
        lines = ["import zoo"]
        if e.towers and e.weights:
            lines.append(f'model = zoo.load("{e.name}")  # towers: model["{next(iter(e.towers))}"], ...')
            for modality in e.towers:
                lines.append(
                    f'{modality} = zoo.transform_for("{e.name}", tower="{modality}"){_TOWER_INPUT[modality]}'
                )
            inputs = ", ".join(f"{m}={m}" for m in e.towers)
            lines.append(f"embeddings = model({inputs})  # {{modality: (B, F)}}")
        elif e.towers:  # no source zoo can fetch: the notes say where the original comes from
            lines.append(f"# no weights source yet: {e.name} cannot be downloaded (see the notes)")
        else:
            if e.weights:
                lines.append(f'model = zoo.load("{e.name}")')
            else:  # no source zoo can fetch: the notes say how to make the file
                lines.append(f'model = zoo.create_model("{e.arch}", pretrained="converted.safetensors")')
            if p.modality == "video" and p.num_frames and p.size:
                lines.append(f'views = zoo.transform_for("{e.name}")("clip.mp4")  # (views, C, T, H, W)')
        return lines

    def to_markdown(self) -> str:
        e, p = self.entry, self.entry.preprocess
        lines = [f"# {e.name}", ""]
        if e.notes:
            lines += [e.notes.strip(), ""]
        architecture = (
            f"towers {', '.join(e.towers)}" if e.towers else f"`{e.arch}` {e.arch_args or ''}".rstrip()
        )
        lines += [f"- architecture: {architecture}", f"- license: {e.license}"]
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
        if e.towers:
            lines += ["", "## Towers", "", "| tower | architecture | parameters | keys | preprocessing |"]
            lines += ["|---|---|---|---|---|"] + [f"| {' | '.join(row)} |" for row in self.tower_rows()]
            if e.ignore_keys:
                lines += ["", f"Keys not loaded: {', '.join(f'`{k}`' for k in e.ignore_keys)}"]
        else:
            lines += ["", "## Preprocessing", ""]
            lines += [f"- {k}: {v}" for k, v in p.to_dict().items() if v is not None]
        lines += ["", "## Usage", "", "```python", *self._usage(), "```"]
        if e.paper and e.paper.bibtex:
            lines += ["", "## Citation", "", "```bibtex", e.paper.bibtex.strip(), "```"]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.to_markdown()

    def __repr__(self) -> str:  # consoles and plain-text notebook outputs show the card, not the dataclass
        return self.to_markdown()

    def _repr_markdown_(self) -> str:  # notebooks render the card
        return self.to_markdown()
