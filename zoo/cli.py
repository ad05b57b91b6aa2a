"""The ``zoo`` command: Lightning CLI subcommands plus catalog, weights and data tools.

``zoo fit|validate|test|predict`` go to :class:`zoo.lightning_cli.ZooCLI`, the Lightning CLI in
subclass mode over every method and DataModule; the other subcommands are small tools that import only
what they use (a mistaken catalog name never loads Lightning). A user mistake ends in one clear line
on stderr (exit 2), not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

LIGHTNING_COMMANDS = ("fit", "validate", "test", "predict")
PLUGINS = {"data": "zoo.data.commands", "eval": "zoo.eval.commands"}


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that mean the user asked for something wrong (printed as one line).

    Only modules already imported are looked at: an error class of a module that was never loaded
    cannot have been raised, and a user mistake must not cost the import of Lightning.
    """
    from zoo.catalog import CatalogError
    from zoo.errors import UsageError
    from zoo.registry import UnknownNameError

    errors: list[type[BaseException]] = [UsageError, CatalogError, UnknownNameError, FileNotFoundError]
    for module, names in {
        "zoo.hub": ("WeightsUnavailableError", "ChecksumError"),
        "zoo.serialization": ("UnsafeCheckpointError",),
        "zoo.data.video": ("VideoDecodeError",),
        "zoo.data.formats": ("ManifestError",),
        "zoo.run_checkpoints": ("CheckpointContentError",),
    }.items():
        mod = sys.modules.get(module)
        errors += [getattr(mod, n) for n in names if hasattr(mod, n)]
    return tuple(errors)


# --- Lightning CLI ---------------------------------------------------------------------------


def recipe_hint(command: str) -> str:
    """What to give a Lightning command that has no config (its model and data are required)."""
    return f"give a recipe: zoo {command} --config configs/<method>/<dataset>.yaml (see zoo {command} --help)"


def run_lightning(argv: Sequence[str] | None) -> int:
    """``zoo fit|validate|test|predict``; ``argv`` None parses the process's own command line."""
    from zoo.lightning_cli import ZooCLI

    ZooCLI(args=argv)
    return 0


def one_line(message: str) -> str:
    """A jsonargparse error on one line: the key (or file) it names and why, without the type dump.

    For a key whose type is a union, jsonargparse lists under ``Errors:`` why the value failed each
    member; the ``NoneType`` member of an optional key explains nothing and is dropped, and so are
    the list of members and a given value too long to read on one line.
    """
    lines = [line for line in message.splitlines() if line.strip()]
    if not lines:
        return message
    noise = ("Does not validate against any of the Union subtypes", "Expected a <class 'NoneType'>")
    head, reasons, in_errors = lines[0].strip(), [], False
    for line in lines[1:]:
        text = line.strip()
        if text == "Errors:":
            in_errors = True
        elif in_errors and text.startswith("- "):
            reasons.append(text[2:])
        elif in_errors and reasons and not text.startswith("Given value"):  # a reason's continuation
            reasons[-1] = f"{reasons[-1]} {text}"
        elif text.startswith("Given value:"):
            in_errors = False
            if len(text) <= 60:
                reasons.append(text[0].lower() + text[1:])
        elif not text.startswith(("Subtypes:", "Given value type:")):
            reasons.append(text)
    reasons = [r for r in reasons if r not in noise]
    return f"{head} {'; '.join(reasons)}" if reasons else head


# --- catalog and weights tools ---------------------------------------------------------------


def _count_params(arch: str, arch_args: dict) -> int:
    from zoo import registry

    return registry.count_parameters(arch, **arch_args)


def _human(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def cmd_models(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from zoo import api, registry
    from zoo.catalog import catalog

    console = Console(width=None if sys.stdout.isatty() else 160)
    notes: list[str] = []
    if args.arch:
        from zoo.errors import UsageError

        table = Table("architecture", "params")
        for name in api.list_models(args.pattern):
            try:
                params = _human(_count_params(name, {}))
            except UsageError as exc:  # an optional extra is missing (text encoders need transformers)
                params = "-"
                notes.append(f"{name}: {exc}")
            table.add_row(name, params)
    else:
        table = Table("name", "arch", "params", "input", "metric", "weights", "license")
        entries = catalog()
        for name in registry.filter_names(list(entries), args.pattern):  # with or without weights
            e = entries[name]
            p = e.preprocess
            shape = f"{p.num_frames}×{p.size}²" if p.num_frames else (f"{p.size}²" if p.size else p.modality)
            m = e.metrics.headline()
            metric = f"{m.name} {m.value:g} ({m.dataset})" if m else "—"
            params = _human(sum(_count_params(arch, args) for arch, args in e.architectures))
            table.add_row(name, e.arch_label, params, shape, metric, e.weight_status, e.license)
    if not table.rows:
        console.print(f"no models match '{args.pattern}'")
        return 1
    console.print(table)
    for note in notes:
        print(note)
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from zoo.catalog import get_entry
    from zoo.model_card import Card

    print(Card(get_entry(args.name)).to_markdown())  # zoo.card without importing torch
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    from zoo import hub

    print(hub.download(args.name, revision=args.revision, cache_dir=args.cache_dir))
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from zoo.convert import convert_file
    from zoo.serialization import save_state_dict

    src = Path(args.source)
    if not src.is_file():
        raise FileNotFoundError(f"no such checkpoint file: {src}")
    state = convert_file(args.format, src)
    save_state_dict(state, args.output, metadata={"format": "zoo", "converted_from": args.format})
    print(f"wrote {args.output} ({len(state)} tensors)")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from zoo.publish import publish

    plan = publish(args.name, args.repo_id, out_dir=args.out, dry_run=args.dry_run)
    print(plan)
    return 0


def cmd_checkpoints_validate(args: argparse.Namespace) -> int:
    from zoo.api import entry_transform
    from zoo.catalog import CATALOG_PATH, CatalogError, parse_catalog
    from zoo.convert import get_converter
    from zoo.registry import UnknownNameError, get_factory

    path = Path(args.path) if args.path else CATALOG_PATH
    entries = parse_catalog(path)
    for entry in entries.values():
        for where, tower in [(f"towers.{m}.arch", t) for m, t in entry.towers.items()] or [("arch", entry)]:
            try:
                get_factory(tower.arch)
            except UnknownNameError as err:
                raise CatalogError(f"{path}: entry '{entry.name}', field '{where}': {err}") from None
            _count_params(tower.arch, tower.arch_args)  # arch args build
        if "audio" in entry.towers:
            entry_transform(entry, "audio")  # the front-end's fields build
        for source in entry.weights:
            if source.format != "safetensors":
                get_converter(source.format)  # a misspelt format names the closest ones
    print(f"{path}: {len(entries)} entries valid")
    return 0


def cmd_quickstart(args: argparse.Namespace) -> int:
    from zoo.quickstart import run

    run(args.out, epochs=args.epochs, seed=args.seed, limit_batches=args.limit_batches)
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """The backbone of a training checkpoint as a safetensors file ``zoo.create_model`` can load."""
    from zoo.errors import UsageError
    from zoo.serialization import safe_torch_load, save_state_dict, strip_prefix

    checkpoint = safe_torch_load(Path(args.checkpoint))
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise UsageError(f"{args.checkpoint}: not a Lightning checkpoint (no 'state_dict')")
    prefix = args.prefix
    state = strip_prefix(checkpoint["state_dict"], prefix)
    if not state:
        raise UsageError(f"{args.checkpoint}: no parameter starts with '{prefix}'")
    save_state_dict(
        state, args.output, metadata={"format": "zoo", "exported_from": Path(args.checkpoint).name}
    )
    print(f"wrote {args.output} ({len(state)} tensors)")
    return 0


def cmd_elo_search(args: argparse.Namespace) -> int:
    """Evolve ELo's loss weights around short proxy trainings of a recipe; print and save the candidates."""
    import json

    from zoo.methods.elo_search import ProxyTraining, evolve

    data_args = {"num_workers": args.workers, "persistent_workers": False} if args.workers is not None else {}
    proxy = ProxyTraining(
        Path(args.config),
        Path(args.out),
        args.steps,
        args.clusters,
        args.zipf_exponent,
        data_args,
        seed=args.seed,
    )
    report = lambda c: print(f"gen {c.generation} fitness {c.fitness:.4f} {c.figures}", flush=True)  # noqa: E731
    result = evolve(
        proxy.initial_weights(),
        proxy,
        args.population,
        args.generations,
        args.tournament,
        args.mutation_rate,
        args.mutation_std,
        args.seed,
        on_candidate=report,
    )
    summary = {**result.to_json(), "correlation_knn_top1": result.correlation("knn_top1")}
    (Path(args.out) / "search.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps({"best": summary["best"], "correlation_knn_top1": summary["correlation_knn_top1"]}))
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from zoo.explain.clip import explain_video_file

    result = explain_video_file(
        args.model,
        args.video,
        args.target,
        args.out,
        areas=tuple(args.area),
        variant=args.variant,
        iterations=args.iterations,
        learning_rate=args.learning_rate,
        jitter=args.jitter,
        overlay_format=args.format,
        progress=not args.quiet,
    )
    print(
        f"target {args.target}: logit {result.score:.3f} on the clip, {result.preserved_score:.3f} kept in the mask"
    )
    print(f"wrote {result.masks_path}")
    print(f"wrote {result.overlay_path}")
    return 0


def show_help(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """A group of subcommands called alone (``zoo checkpoints``): its help, listing them."""
    parser.print_help()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zoo",
        description="Model zoo for self-supervised video and multimodal learning.",
        epilog=f"Lightning commands: {', '.join(LIGHTNING_COMMANDS)} (zoo fit --help).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in LIGHTNING_COMMANDS:
        sub.add_parser(name, help=f"Lightning CLI: {name} a method (--config YAML)", add_help=False)

    p = sub.add_parser("models", help="table of catalog checkpoints (or architectures with --arch)")
    p.add_argument("pattern", nargs="?", default=None, help="fnmatch filter, e.g. 'motionformer*'")
    p.add_argument("--arch", action="store_true", help="list registered architectures instead")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("card", help="print a checkpoint's card")
    p.add_argument("name")
    p.set_defaults(func=cmd_card)

    p = sub.add_parser("download", help="fetch (and convert) a checkpoint into the cache")
    p.add_argument("name")
    p.add_argument("--revision", default=None)
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("convert", help="convert an original checkpoint into a zoo safetensors file")
    p.add_argument("format", help="checkpoint format, e.g. motionformer-pyth")
    p.add_argument("source", help="the original checkpoint file")
    p.add_argument("output", help="the .safetensors file to write")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("publish", help="write (and upload) a Hub folder for a checkpoint")
    p.add_argument("name")
    p.add_argument("--repo-id", required=True)
    p.add_argument("--out", default=None, help="folder to write (default: a temporary one)")
    p.add_argument(
        "--dry-run", action="store_true", help="write the folder, print the API calls, upload nothing"
    )
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser(
        "quickstart", help="SynthMotion + fine-tune a pretrained Motionformer vs scratch (CPU)"
    )
    p.add_argument("--out", default="runs/quickstart", help="where runs and the plot go")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-batches", type=float, default=1.0, help="fraction of training batches per epoch")
    p.set_defaults(func=cmd_quickstart)

    p = sub.add_parser("export", help="write a training checkpoint's backbone as safetensors")
    p.add_argument("checkpoint", help="a Lightning .ckpt")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument(
        "--prefix", default="model.", help="state-dict prefix of the backbone (VideoClassifier: model.)"
    )
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("explain", help="extremal perturbation of a video for one class: masks + overlay")
    p.add_argument("model", help="a catalog name or published folder of a video classifier")
    p.add_argument("video", help="the video file")
    p.add_argument("--target", type=int, required=True, help="the class to explain")
    p.add_argument("--out", default="explanations", help="folder for the masks and the overlay")
    p.add_argument(
        "--area", type=float, nargs="+", default=[0.05], help="mask volume(s), fractions of the clip"
    )
    p.add_argument("--variant", choices=("preserve", "delete", "dual"), default="preserve")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument(
        "--learning-rate",
        type=float,
        default=0.1,
        help="TorchRay's schedule: --iterations 800 --learning-rate 0.01",
    )
    p.add_argument("--jitter", action="store_true", help="flip horizontally on even iterations")
    p.add_argument("--format", choices=("gif", "mp4"), default="gif", help="overlay file format")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("checkpoints", help="catalog tools")
    p.set_defaults(func=partial(show_help, p))  # `zoo checkpoints` alone
    csub = p.add_subparsers(dest="checkpoints_command", metavar="SUBCOMMAND")
    v = csub.add_parser("validate", help="parse the catalog and build every entry's architecture")
    v.add_argument("path", nargs="?", default=None, help="a catalog file (default: the packaged one)")
    v.set_defaults(func=cmd_checkpoints_validate)

    p = sub.add_parser("elo", help="ELo tools")
    p.set_defaults(func=partial(show_help, p))
    esub = p.add_subparsers(dest="elo_command", metavar="SUBCOMMAND")
    e = esub.add_parser(
        "search", help="evolve ELo's loss weights with the Zipf fitness (short proxy trainings)"
    )
    e.add_argument("--config", required=True, help="an ELo recipe, e.g. configs/elo/synthmotion.yaml")
    e.add_argument("--out", default="runs/elo_search", help="one folder per candidate and search.json")
    e.add_argument("--population", type=int, default=6)
    e.add_argument("--generations", type=int, default=3, help="generations of children after the first")
    e.add_argument("--steps", type=int, default=30, help="optimiser steps of each proxy training")
    e.add_argument("--clusters", type=int, default=16, help="k of the Zipf fitness")
    e.add_argument("--zipf-exponent", type=float, default=1.0, help="s of the Zipf prior")
    e.add_argument("--tournament", type=int, default=2, help="candidates per tournament")
    e.add_argument("--mutation-rate", type=float, default=0.3)
    e.add_argument("--mutation-std", type=float, default=0.2)
    e.add_argument("--workers", type=int, default=None, help="data-loading workers of the proxy runs")
    e.add_argument("--seed", type=int, default=0)
    e.set_defaults(func=cmd_elo_search)

    for name, module in PLUGINS.items():
        p = sub.add_parser(name, help=f"{name} tools")
        p.set_defaults(func=partial(show_help, p))  # taken when the plugin's subcommand is optional
        importlib.import_module(module).configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``zoo`` command; ``argv`` None reads the process's own command line."""
    own_argv = argv is None
    argv = list(sys.argv[1:] if own_argv else argv)
    if argv and argv[0] in LIGHTNING_COMMANDS:
        command = argv[0]
        if len(argv) == 1:
            print(f"zoo {command}: error: {recipe_hint(command)}", file=sys.stderr)
            return 2
        run = lambda: run_lightning(None if own_argv else argv)  # noqa: E731
    else:
        args = build_parser().parse_args(argv)
        command, run = args.command, lambda: args.func(args)
    try:
        return int(run() or 0)
    except argparse.ArgumentError as exc:  # raised by jsonargparse (exit_on_error=False)
        message = one_line(str(exc))
        if message.startswith("the following arguments are required"):
            message = f"{message}; {recipe_hint(command)}"
        print(f"zoo {command}: error: {message}", file=sys.stderr)
        return 2
    except Exception as exc:
        cause = _user_error(exc)
        if cause is None:
            raise
        print(f"zoo {command}: error: {cause}", file=sys.stderr)
        return 2


def _user_error(exc: BaseException | None) -> BaseException | None:
    """The user mistake behind ``exc`` (jsonargparse wraps errors raised while building a class)."""
    errors = user_errors()
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, errors):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


if __name__ == "__main__":
    sys.exit(main())
