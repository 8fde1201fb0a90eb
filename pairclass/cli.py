"""The ``pairclass`` command line: parse arguments, call one library entry point, print.

Human-readable output (tables, progress, warnings) goes to stderr; stdout carries only data
(``--json``). Library input errors and usage errors become one line, ``Error: ...``, and exit code 2.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import json
import logging
import sys
import warnings
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
from rich.progress import TimeRemainingColumn
from rich.table import Table
from rich.text import Text
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from typer._click.exceptions import NoArgsIsHelpError  # typer vendors click; pinned in pyproject
from typer.core import TyperGroup

from . import __version__
from .errors import InputError
from .io import DEFAULT_BATCH_ROWS, DEFAULT_ID_COL, DEFAULT_VIEWS
from .methods import DEFAULT_METHOD, METHODS

EXIT_INPUT = 2


class OneLineErrors(TyperGroup):
    """Usage errors (a bad value, a missing option) as one ``Error:`` line, like every other error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False,
                                **extra)
        except NoArgsIsHelpError as e:
            e.show()
            code = e.exit_code
        except typer.TyperException as e:
            print(f"Error: {_one_line(e.format_message())}", file=sys.stderr)
            code = e.exit_code
        except typer.Abort:
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="pairclass",
    cls=OneLineErrors,
    help="Zero-shot product classification over CLIP embeddings, decided pair by pair.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)


def library_errors(command):
    """Turn the library's input errors into ``Error: <message>`` on stderr and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                warnings.showwarning = _show_warning
                return command(*args, **kwargs)
        except (InputError, InvalidParameterError, NotFittedError) as e:
            print(f"Error: {_one_line(e)}", file=sys.stderr)
            raise typer.Exit(code=EXIT_INPUT) from None

    return wrapper


def _one_line(e):
    return " ".join(str(e).split())


def needs_extra(module, extra):
    """Import a command's optional part (``.embed``, ``.dml``), or fail in one line naming the extra
    that installs what is missing."""
    try:
        return importlib.import_module(module, __package__)
    except ModuleNotFoundError as e:
        if e.name is None or e.name.split(".")[0] == __package__:
            raise
        raise InputError(f"this command needs {e.name}, which is not installed; install it with "
                         f"pip install 'pairclass[{extra}]'") from None


def _show_warning(message, category, filename, lineno, file=None, line=None):
    err.print(f"[yellow]Warning:[/] {_one_line(message)}", highlight=False)


def split_list(value: str, what: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise typer.BadParameter(f"give at least one {what}")
    return items


def progress_printer(enabled):
    """A ``progress(message)`` callback for the library: a spinner line on a terminal, else nothing."""
    if not enabled or not err.is_terminal:
        return None
    return lambda message: err.log(message)


class _RateColumn(ProgressColumn):
    def render(self, task):
        return Text(f"{task.speed:,.0f} items/s" if task.speed else "- items/s", style="progress.data.speed")


class ScanProgress:
    """The pipeline's progress: on a terminal, one rich bar per scan with items/s; otherwise one line
    per scan on stderr (none with ``quiet``)."""

    def __init__(self, quiet=False):
        self.quiet = quiet
        self.bar = None

    def start(self, label, total):
        import time

        self._label, self._total, self._done, self._t = label, total, 0, time.perf_counter()
        if err.is_terminal and not self.quiet:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                                TimeRemainingColumn(), console=err, transient=True)
            self.bar.start()
            self._task = self.bar.add_task(label[:60], total=total)

    def advance(self, n):
        self._done += n
        if self.bar is not None:
            self.bar.update(self._task, advance=n)

    def finish(self):
        import time

        seconds = time.perf_counter() - self._t
        if self.bar is not None:
            self.bar.stop()
            self.bar = None
        if not self.quiet:
            err.print(f"{self._label}: {self._done:,} items in {seconds:.1f} s "
                      f"({self._done / max(seconds, 1e-9):,.0f} items/s)", highlight=False)

    def note(self, message):
        if not self.quiet:
            err.print(message, highlight=False)


def _version(value: bool):
    if value:
        print(f"pairclass {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
):
    """Zero-shot product classification over CLIP embeddings, decided pair by pair."""


def _fmt(x):
    return "-" if x is None else f"{x:.3f}"


def render_classify(result):
    """Methods as rows; per-view accuracy and F1 (with labels) and the views' agreement F1."""
    table = Table(title=f"pairclass classify: {result.n_items:,} items, {len(result.classes)} classes")
    table.add_column("method")
    has_labels = any("accuracy" in m for m in result.methods.values())
    if has_labels:
        for v in result.views:
            table.add_column(f"accuracy {v}", justify="right")
        for v in result.views:
            table.add_column(f"F1 {v}", justify="right")
    table.add_column("agreement F1", justify="right")
    for name, m in result.methods.items():
        cells = [name]
        if has_labels:
            cells += [_fmt(m["accuracy"][v]) for v in result.views]
            cells += [_fmt(m["f1"][v]) for v in result.views]
        cells.append(_fmt(m["agreement_f1"]))
        table.add_row(*cells)
    err.print(table)
    if result.per_class:
        per = Table(title="per-class F1")
        per.add_column("class")
        per.add_column("support", justify="right")
        keys = list(result.per_class[0]["f1"])
        for key in keys:
            per.add_column(key, justify="right")
        for row in result.per_class:
            per.add_row(row["class"], str(row["support"]), *[_fmt(row["f1"][k]) for k in keys])
        err.print(per)
    for method, per_view in result.diagnostics.get("fallback_pairs", {}).items():
        for view, n in per_view.items():
            if n:
                err.print(
                    f"{method} / {view}: {n} of {result.diagnostics['n_pairs']} class pairs had too few "
                    "confident items and used the full-embedding cosine",
                    highlight=False,
                )


# Options shared by commands.
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")]
IdColOption = Annotated[str, typer.Option(help="Item id column.")]
ViewsOption = Annotated[
    Optional[str],
    typer.Option(help="Embedding columns, comma-separated (one or two). Default: the views 'pairclass embed' "
                 f"recorded, else {','.join(DEFAULT_VIEWS)}."),
]
LabelLevelOption = Annotated[
    Optional[int], typer.Option(min=0, help="For list-valued labels (category paths): the level to use, 0 = top.")
]
KeepColsOption = Annotated[
    Optional[str], typer.Option(help="Columns to copy into the output (titles, image paths), comma-separated.")
]
ImageColOption = Annotated[
    Optional[str], typer.Option(help="Image paths (relative to the input's folder, or absolute) to show as "
                                "thumbnails in the report.")
]
TUNING = "Tuning"
SCALE = "Scale"


def _views(value):
    return None if value is None else split_list(value, "column")


class Tournament(str, Enum):
    bracket = "bracket"
    copeland = "copeland"


class Match(str, Enum):
    cosine = "cosine"
    midpoint = "midpoint"
    fisher = "fisher"


class ProtoPrior(str, Enum):
    auto = "auto"
    min_count = "min-count"
    class_ = "class"


class Center(str, Enum):
    none = "none"
    balanced = "balanced"


class RankBy(str, Enum):
    self_confidence = "self_confidence"
    normalized_margin = "normalized_margin"
    confidence_weighted_entropy = "confidence_weighted_entropy"


class Engine(str, Enum):
    local = "local"
    ray = "ray"


EngineOption = Annotated[
    Engine, typer.Option(help="local (threads on this machine) or ray (Ray Data jobs on a cluster; the ray extra).",
                         rich_help_panel=SCALE)
]
RayAddressOption = Annotated[
    Optional[str], typer.Option(help="With --engine ray: the cluster to join (auto, HOST:6379 or ray://HOST:10001). "
                                "Default: start a local one.", rich_help_panel=SCALE)
]


@app.command()
@library_errors
def classify(
    embeddings: Annotated[
        str, typer.Argument(help="Embedding parquet (SQID layout): a file, a folder of part files, or a glob.")
    ],
    classes: Annotated[
        Path,
        typer.Option(
            help="Classes: parquet with 'name' and 'embedding' (see embed-classes), or names only when the "
            "embeddings came from 'pairclass embed' (then embedded here with the same model)."
        ),
    ],
    method: Annotated[
        str,
        typer.Option(
            help=f"Comma-separated methods beside the baseline: {', '.join(METHODS)}, or all. "
            f"The default method ({DEFAULT_METHOD}) is also reported as 'default'. 'baseline' alone runs only it."
        ),
    ] = DEFAULT_METHOD,
    pairwise: Annotated[bool, typer.Option("--pairwise", help="Also run the seed pairwise method.")] = False,
    views: ViewsOption = None,
    id_col: IdColOption = DEFAULT_ID_COL,
    label_col: Annotated[Optional[str], typer.Option(help="Catalogue label column: adds accuracy.")] = None,
    label_level: LabelLevelOption = None,
    labels: Annotated[
        Optional[Path], typer.Option(help="Labels from their own parquet/CSV (id column and --label-col), joined "
                                     "on the id.")
    ] = None,
    keep_cols: KeepColsOption = None,
    k: Annotated[int, typer.Option(min=1, help="Dimensions kept per class pair.", rich_help_panel=TUNING)] = 100,
    cos_min: Annotated[
        Optional[float], typer.Option(min=-1.0, max=1.0, help="Top-cosine cut-off for the pair statistics.",
                                      rich_help_panel=TUNING)
    ] = None,
    diff_min: Annotated[
        float, typer.Option(min=0.0, help="Pair-margin cut-off for the pair statistics.", rich_help_panel=TUNING)
    ] = 0.0,
    candidates: Annotated[
        Optional[int], typer.Option(min=2, help="Play each item's top-M classes only (large class lists).",
                                    rich_help_panel=TUNING)
    ] = None,
    min_count: Annotated[
        int, typer.Option(min=2, help="Fewer confident items than this: full cosine; also the prototype prior, "
                          "in items.", rich_help_panel=TUNING)
    ] = 10,
    seed: Annotated[int, typer.Option(min=0, help="Seed for the bracket order.", rich_help_panel=TUNING)] = 0,
    tournament: Annotated[
        Tournament, typer.Option(help="bracket (knockout, C-1 matches), or copeland (round robin, for small C).",
                                 rich_help_panel=TUNING)
    ] = Tournament.bracket,
    match: Annotated[
        Optional[Match],
        typer.Option(
            help="How a pair's match is scored: cosine (the seed's), midpoint (threshold halfway between the "
            "pair's two pseudo-classes) or fisher (the pair's dimensions and the full cosine, each against its "
            "midpoint, weighted by their Fisher discriminants). Default: cosine for pairwise, fisher for the "
            "methods built on proto.", rich_help_panel=TUNING,
        ),
    ] = None,
    proto_prior: Annotated[
        ProtoPrior,
        typer.Option(
            help="What a class embedding is worth against its items' mean in the prototype step (proto and the "
            "methods built on it): min-count (that many items), class (one average class of the batch: "
            "safer when a batch holds only a few of the classes, at some accuracy on full catalogues), or auto "
            "(class with one view, whose only second opinion is the zero-shot rule; min-count with two).",
            rich_help_panel=TUNING,
        ),
    ] = ProtoPrior.auto,
    center: Annotated[
        Center, typer.Option(help="none, or balanced: remove the items' class-balanced mean and the classes' mean "
                             "first.", rich_help_panel=TUNING)
    ] = Center.none,
    encoder: Annotated[
        Optional[Path], typer.Option(help="Also classify through a head from 'pairclass train'.")
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Write predictions: FILE.parquet, FILE.csv, or DIR/ for part files.")
    ] = None,
    report: Annotated[
        Optional[Path], typer.Option(help="Write a self-contained HTML report (matrices, per-class F1, examples).")
    ] = None,
    image_col: ImageColOption = None,
    batch_rows: Annotated[
        int, typer.Option(min=1, help="Rows read at a time.", rich_help_panel=SCALE)
    ] = DEFAULT_BATCH_ROWS,
    workers: Annotated[
        Optional[int], typer.Option(min=1, help="Worker threads (--engine ray: map tasks at once). Default: the CPU "
                                    "count (ray: what the cluster allows).", rich_help_panel=SCALE)
    ] = None,
    cache_dir: Annotated[
        Optional[Path], typer.Option(help="Folder for the temporary view cache of multi-scan methods (default: the "
                                     "system's temporary folder).", rich_help_panel=SCALE)
    ] = None,
    cache: Annotated[
        bool, typer.Option(help="Cache the views after the first scan (--no-cache: re-read the files).",
                           rich_help_panel=SCALE)
    ] = True,
    engine: EngineOption = Engine.local,
    ray_address: RayAddressOption = None,
    json_out: JsonOption = False,
):
    """Classify items against class embeddings, per view, and report agreement and accuracy.

    Example: pairclass classify data/demo.parquet --classes data/demo_classes.parquet
    --views product_name,description --label-col category
    """
    from .classify import PairwiseClassifier
    from .engines import get_engine
    from .run import run_classify

    methods = split_list(method, "method") + (["pairwise"] if pairwise else [])
    estimator = PairwiseClassifier(k=k, cos_min=cos_min, diff_min=diff_min, candidates=candidates,
                                   min_count=min_count, seed=seed, tournament=tournament.value,
                                   match=None if match is None else match.value)
    result = run_classify(
        embeddings, classes, estimator=estimator, views=_views(views), id_col=id_col, label_col=label_col,
        label_level=label_level, labels=labels, keep_cols=split_list(keep_cols, "column") if keep_cols else (),
        methods=methods,
        proto_prior=proto_prior.value, center=center.value, encoder=encoder, out=out, keep_predictions=False,
        batch_rows=batch_rows, cache=cache, cache_dir=cache_dir,
        engine=get_engine(engine.value, workers=workers, address=ray_address),
        progress=ScanProgress(quiet=json_out), report=report, image_col=image_col,
    )
    for note in result.warnings:
        err.print(f"[yellow]Warning:[/] {note}", highlight=False)
    if json_out:
        print(json.dumps(result.to_json()))
    else:
        render_classify(result)
        if out is not None:
            err.print(f"wrote {result.n_items:,} predictions to {out}", highlight=False)
        if report is not None:
            err.print(f"wrote the report to {report}", highlight=False)


# `pairclass embed` and `pairclass embed-classes` (torch is imported only when they run)
class Backend(str, Enum):
    clip = "clip"
    text = "text"


class Precision(str, Enum):
    auto = "auto"
    fp32 = "fp32"
    fp16 = "fp16"
    bf16 = "bf16"


# The model block that embed and embed-classes share, added by `model_options`.
MODEL_OPTIONS = {
    "backend": (Annotated[Backend, typer.Option(help="clip (open_clip) or text (sentence-transformers).")],
                Backend.clip),
    "model": (Annotated[Optional[str], typer.Option(
        help="open_clip model name or model-config JSON (clip); sentence-transformers folder or name (text). "
        "Default: ViT-B-32 (clip), the offline all-MiniLM-L6-v2 (text).")], None),
    "pretrained": (Annotated[Optional[str], typer.Option(
        help="open_clip tag, .safetensors file or local-dir:DIR. Default: laion2b_s34b_b79k for ViT-B-32 "
        "(fetched once, or read from the Hugging Face cache offline).")], None),
    "random_weights": (Annotated[bool, typer.Option(
        "--random-weights", help="Seeded random weights instead of pretrained ones (tests, throughput "
        "benchmarks).")], False),
    "device": (Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")], "auto"),
    "precision": (Annotated[Precision, typer.Option(help="Autocast precision; auto: fp16 on a GPU, else fp32.")],
                  Precision.auto),
    "batch_size": (Annotated[int, typer.Option(help="Items (or prompts) per model batch.")], 256),
}


def model_options(command):
    """Put the shared model options where ``command`` has its ``model_args`` parameter; the command
    gets them there as one dict of library keyword arguments (choices as plain strings)."""
    signature = inspect.signature(command, eval_str=True)
    shared = [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=annotation, default=default)
              for name, (annotation, default) in MODEL_OPTIONS.items()]
    params = []
    for p in signature.parameters.values():
        params += shared if p.name == "model_args" else [p]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        chosen = {name: kwargs.pop(name) for name in MODEL_OPTIONS}
        return command(*args, **kwargs, model_args={k: getattr(v, "value", v) for k, v in chosen.items()})

    wrapper.__signature__ = signature.replace(parameters=params)
    return wrapper


def _text_cols(value):
    """``--text-col`` as the library takes it: "auto", one column, or a column -> output mapping."""
    if value is None:
        return "auto"
    items = [v.strip() for v in value.split(",") if v.strip()]
    if len(items) == 1 and "=" not in items[0]:
        return items
    pairs = [item.split("=", 1) if "=" in item else (item, item) for item in items]
    return {src.strip(): dst.strip() for src, dst in pairs}


@contextlib.contextmanager
def embed_progress(enabled):
    """Yield a ``progress(done, total)`` callback drawing a rich bar with items/s on stderr, or None."""
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), _RateColumn(),
                  TimeRemainingColumn(), console=err, transient=True) as bar:
        task = None

        def update(done, total):
            nonlocal task
            if task is None:
                # items from an earlier run do not count towards the rate
                task = bar.add_task("embed", total=total)
                bar.reset(task, total=total, completed=done)
            else:
                bar.update(task, completed=done)

        yield update


@app.command()
@library_errors
@model_options
def embed(
    manifest: Annotated[Path, typer.Argument(help="Catalogue: CSV or parquet, one row per item.")],
    out: Annotated[Path, typer.Option(help="Output embedding parquet (SQID layout).")],
    id_col: Annotated[str, typer.Option(help="Item id column.")] = DEFAULT_ID_COL,
    image_col: Annotated[
        Optional[str], typer.Option(help="Image paths or http(s) URLs. Default: 'image' if present; '' for none.")
    ] = None,
    text_col: Annotated[
        Optional[str],
        typer.Option(help="Text column(s), comma-separated, each SRC or SRC=OUT. Default: 'title' if present."),
    ] = None,
    keep_cols: Annotated[
        Optional[str], typer.Option("--keep-cols", "--keep-col",
                                    help="Manifest columns to copy to the output (e.g. labels), comma-separated.")
    ] = None,
    model_args: dict = None,
    workers: Annotated[Optional[int], typer.Option(help="Image decoding workers. Default: CPU count, max 16.")] = None,
    chunk_rows: Annotated[int, typer.Option(help="Items per resumable chunk.")] = 4096,
    image_root: Annotated[
        Optional[Path], typer.Option(help="Folder of relative image paths. Default: the manifest's folder.")
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds per image download attempt, from connecting to the last byte.")
    ] = 10.0,
    max_bytes: Annotated[int, typer.Option(help="Largest image file or download, in bytes.")] = 20_000_000,
    max_pixels: Annotated[int, typer.Option(help="Largest image in pixels (decompression-bomb guard).")] = 40_000_000,
    retries: Annotated[int, typer.Option(help="Retries after a timeout, connection error or 5xx.")] = 2,
    max_downloads: Annotated[int, typer.Option(help="Concurrent downloads per worker.")] = 16,
    retry_errors: Annotated[bool, typer.Option(help="On a rerun, retry the items that failed before.")] = False,
    engine: Annotated[
        Engine, typer.Option(help="local (DataLoader workers and the model here) or ray (decoding tasks and model "
                             "actors, one per GPU, on a Ray cluster; the ray extra).")
    ] = Engine.local,
    ray_address: RayAddressOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
):
    """Embed a catalogue's images and titles into an embedding parquet; a rerun resumes or adds new ids.

    Example: pairclass embed products.csv --out emb.parquet --image-col image --text-col title
    """
    lib = needs_extra(".embed", "embed")
    limits = lib.FetchLimits(timeout=timeout, max_bytes=max_bytes, max_pixels=max_pixels, retries=retries,
                             max_downloads=max_downloads)
    with embed_progress(not json_out) as progress:
        result = lib.run_embed(
            manifest, out, id_col=id_col, image_col="auto" if image_col is None else image_col or None,
            text_cols=_text_cols(text_col), keep_cols=split_list(keep_cols, "column") if keep_cols else (),
            **model_args, workers=workers, chunk_rows=chunk_rows, image_root=image_root,
            limits=limits, retry_errors=retry_errors, progress=progress, engine=engine.value, ray_address=ray_address,
        )
    if json_out:
        print(json.dumps(result.to_json()))
        return
    table = Table(title=f"pairclass embed: {result.model} ({result.backend}, {result.dim}-d, {result.device})")
    for col in ("items", "written", "embedded now", "resumed", "failed", "items/s"):
        table.add_column(col, justify="right")
    table.add_row(str(result.n_items), str(result.n_written), str(result.n_embedded),
                  str(result.n_items - result.n_embedded), str(result.n_failed), f"{result.items_per_s:,.1f}")
    err.print(table)
    for reason, count in result.failure_reasons.items():
        err.print(f"[yellow]failed:[/] {count} x {reason}", highlight=False)
    err.print(f"wrote {result.n_written} rows to {result.out}", highlight=False)
    if result.errors_path is not None:
        err.print(f"wrote {result.n_failed} failures to {result.errors_path}", highlight=False)


@app.command("embed-classes")
@library_errors
@model_options
def embed_classes(
    classes: Annotated[Path, typer.Argument(help="Classes: text file (one per line), or CSV/parquet with 'name'.")],
    out: Annotated[Path, typer.Option(help="Output parquet (name, prompt, embedding) for classify --classes.")],
    templates: Annotated[
        str, typer.Option(help="'default' or a text file with one prompt template per line, each with {}.")
    ] = "default",
    model_args: dict = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
):
    """Embed class prompts, averaged over templates (prompt ensembling), for classify --classes.

    Example: pairclass embed-classes classes.txt --out classes.parquet --templates default
    """
    result = needs_extra(".embed", "embed").run_embed_classes(
        classes, out, templates=templates, **model_args,
    )
    if json_out:
        print(json.dumps(result.to_json()))
    else:
        err.print(
            f"wrote {len(result.names)} classes x {len(result.templates)} templates "
            f"({result.model}, {result.dim}-d) to {result.out}",
            highlight=False,
        )


def render_audit(result, top):
    """The most suspect flagged items, then the per-class summary, as tables on stderr."""
    table = Table(title=f"pairclass audit: {result.n_flagged:,} of {result.n_items:,} labels flagged (top {top})")
    for col, justify in [("rank", "right"), ("id", "left"), ("given", "left"), ("suggested", "left"),
                         ("score", "right"), ("reasons", "left")]:
        table.add_column(col, justify=justify)
    for c in result.keep_cols:
        table.add_column(c)
    for row in result.top(top):
        table.add_row(str(row["rank"]), str(row[result.id_col]), row["given_label"], row["suggested_label"],
                      f"{row['label_score']:.3f}", row["reasons"], *[str(row[c]) for c in result.keep_cols])
    err.print(table)
    per = Table(title="per class: estimated noise rate, flagged items and where they go")
    for col in ("class", "items", "noise rate", "flagged", "suggested instead", "suggested here", "from"):
        per.add_column(col, justify="left" if col in ("class", "suggested instead", "from") else "right")
    fmt = lambda d: ", ".join(f"{k} {v}" for k, v in d.items())  # noqa: E731
    for row in result.summary():
        if row["items"] or row["suggested_here"]:
            rate = row["estimated_noise_rate"]
            per.add_row(row["class"], f"{row['items']:,}", "-" if rate is None else f"{rate:.1%}",
                        str(row["flagged"]), fmt(row["flagged_to"]), str(row["suggested_here"]),
                        fmt(row["suggested_from"]))
    err.print(per)
    if result.n_unlabelled:
        err.print(f"{result.n_unlabelled:,} items without a label were left out", highlight=False)
    if result.note:
        err.print(f"[yellow]Note:[/] {result.note}", highlight=False)


@app.command()
@library_errors
def audit(
    embeddings: Annotated[
        str, typer.Argument(help="Embedding parquet (SQID layout) with a label column: a file, a folder or a glob.")
    ],
    classes: Annotated[
        Path, typer.Option(help="Class embeddings: parquet with 'name' and 'embedding' (see embed-classes).")
    ],
    label_col: Annotated[str, typer.Option(help="Catalogue label column to audit.")],
    views: ViewsOption = None,
    id_col: IdColOption = DEFAULT_ID_COL,
    label_level: LabelLevelOption = None,
    keep_cols: KeepColsOption = None,
    zero_shot: Annotated[
        bool, typer.Option("--zero-shot", help="Zero-shot evidence only (pairwise margins against the class "
                           "embeddings); do not learn from the given labels.")
    ] = False,
    signals: Annotated[
        str, typer.Option(help="Evidence, comma-separated: classifier, neighbours, zero-shot.", rich_help_panel=TUNING)
    ] = "classifier,neighbours",
    rounds: Annotated[
        int, typer.Option(min=1, help="Rounds; each after the first learns only from the labels the one before "
                          "kept.", rich_help_panel=TUNING)
    ] = 2,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds.", rich_help_panel=TUNING)] = 5,
    neighbours: Annotated[int, typer.Option(min=1, help="Neighbours per item.", rich_help_panel=TUNING)] = 10,
    dims: Annotated[
        int, typer.Option(min=2, help="Principal components the classifier and neighbours use.",
                          rich_help_panel=TUNING)
    ] = 128,
    rank_by: Annotated[
        RankBy, typer.Option(help="cleanlab's label-quality score.", rich_help_panel=TUNING)
    ] = RankBy.self_confidence,
    k: Annotated[int, typer.Option(min=1, help="Zero-shot: dimensions kept per class pair.",
                                   rich_help_panel=TUNING)] = 100,
    min_count: Annotated[int, typer.Option(min=2, help="Zero-shot: fewer confident items than this: full cosine.",
                                           rich_help_panel=TUNING)] = 10,
    top: Annotated[int, typer.Option(min=0, help="Rows of the flagged-items table (and of --json's 'top').")] = 20,
    seed: Annotated[int, typer.Option(min=0, help="Seed for folds, samples and the neighbour index.")] = 0,
    out: Annotated[Optional[Path], typer.Option(help="Write the issues table, one row per item (parquet, or .csv).")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write the audit report page (HTML).")] = None,
    image_col: ImageColOption = None,
    engine: Annotated[
        Engine, typer.Option(help="local (threads on this machine) or ray (the source's scans as Ray Data jobs; "
                             "the neighbours, cross-validation and cleanlab run here; the ray extra).",
                             rich_help_panel=SCALE)
    ] = Engine.local,
    ray_address: RayAddressOption = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
):
    """Rank the items whose catalogue label is most likely wrong, with a suggested label and the reasons.

    Example: pairclass audit data/demo.parquet --classes data/demo_classes.parquet
    --views product_name,description --label-col category --top 20 --out issues.parquet
    """
    from .audit import run_audit
    from .engines import get_engine

    result = run_audit(
        embeddings, classes, label_col=label_col, views=_views(views), id_col=id_col, label_level=label_level,
        keep_cols=split_list(keep_cols, "column") if keep_cols else (), zero_shot=zero_shot,
        signals=split_list(signals, "signal"), rounds=rounds, folds=folds, neighbours=neighbours, dims=dims,
        rank_by=rank_by.value, k=k, min_count=min_count, seed=seed, out=out, report=report, image_col=image_col,
        engine=get_engine(engine.value, address=ray_address), progress=progress_printer(not json_out),
    )
    if json_out:
        print(json.dumps(result.to_json(top)))
        return
    render_audit(result, top)
    if out is not None:
        err.print(f"wrote {result.n_items:,} items with their label scores to {out}", highlight=False)
    if report is not None:
        err.print(f"wrote the audit report to {report}", highlight=False)


@contextlib.contextmanager
def train_progress(enabled):
    """Yield a ``progress(step, n_steps, loss)`` callback drawing a bar with the loss, or None."""
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task("train", total=None, loss="-")

        def update(step, n_steps, loss):
            bar.update(task, total=n_steps, completed=step, loss=f"{loss:.4f}")

        yield update


@app.command()
@library_errors
def train(
    embeddings: Annotated[Path, typer.Argument(help="Embedding parquet (SQID layout).")],
    out: Annotated[Path, typer.Option(help="Encoder directory to write (safetensors + JSON config).")],
    label_col: Annotated[
        Optional[str], typer.Option(help="Training labels. Without it: pseudo-labels from --classes.")
    ] = None,
    classes: Annotated[
        Optional[Path], typer.Option(help="Class embeddings, for training on confident pseudo-labels.")
    ] = None,
    view: Annotated[str, typer.Option(help="Embedding column to train on.")] = DEFAULT_VIEWS[0],
    id_col: Annotated[str, typer.Option(help="Item id column.")] = DEFAULT_ID_COL,
    loss: Annotated[str, typer.Option(help="proxy_anchor, proxy_nca, soft_triple or contrastive.")] = "proxy_anchor",
    so_weight: Annotated[float, typer.Option(help="Soft Orthogonality weight on the proxies (0: off).")] = 0.0,
    tcm_weight: Annotated[float, typer.Option(help="Threshold-Consistent Margin weight (0: off).")] = 0.0,
    dim: Annotated[
        Optional[int], typer.Option(help="Output width, at least the input's (the head starts as the identity). "
                                    "Default: the input width.")
    ] = None,
    hidden: Annotated[int, typer.Option(help="Hidden width of the residual MLP (0: a linear residual).")] = 512,
    epochs: Annotated[int, typer.Option(help="Most training epochs.")] = 20,
    batch_size: Annotated[int, typer.Option(help="Items per batch.")] = 256,
    lr: Annotated[float, typer.Option(help="Learning rate of the head (proxies: 100x; the Proxy Anchor recipe).")] = 3e-4,
    patience: Annotated[int, typer.Option(help="Stop after this many epochs without a better validation score.")] = 3,
    val_classes_frac: Annotated[
        float, typer.Option(help="Share of the classes held out to choose the epoch on (0: none; keep the last).")
    ] = 0.2,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed for validation classes, weights, proxies and batches.")] = 0,
    train_classes: Annotated[
        Optional[Path], typer.Option(help="Text file, one class per line: train on these only.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")] = False,
):
    """Train a metric-learning projection head on frozen embeddings.

    The head starts as the identity and keeps its best epoch on classes held out of training;
    when no epoch beats the raw embeddings there, it stays the identity (and says so).

    Example: pairclass train emb.parquet --label-col category --loss proxy_anchor --out encoder/
    """
    run_train = needs_extra(".dml", "dml").run_train

    with train_progress(not json_out) as progress:
        result = run_train(
            embeddings, out=out, label_col=label_col, classes=classes, view=view, id_col=id_col,
            loss=loss, so_weight=so_weight, tcm_weight=tcm_weight, dim=dim, hidden=hidden, epochs=epochs,
            batch_size=batch_size, lr=lr, patience=patience, val_classes_frac=val_classes_frac,
            device=device, seed=seed, train_classes=train_classes, progress=progress,
        )
    val = result.validation
    if val is not None and not val["improved"]:
        err.print(
            f"no epoch beat the raw embeddings on the {len(val['classes'])} validation classes "
            f"(R@1 {val['raw']['recall_at_1']:.4f}, MAP@R {val['raw']['map_at_r']:.4f}); "
            f"kept the identity; wrote {result.out}",
            highlight=False, soft_wrap=True,
        )
    elif not json_out:
        best = None if val is None else val["curve"][val["best_epoch"]]
        chosen = "" if val is None else (
            f"; validation R@1 {val['raw']['recall_at_1']:.4f} raw, {best['recall_at_1']:.4f} at epoch "
            f"{val['best_epoch']} ({len(val['curve']) - 1} run)"
        )
        err.print(
            f"trained {result.loss} on {result.n_items} items, {len(result.classes)} classes "
            f"({result.label_source}) in {result.train_seconds:.1f}s on {result.device}{chosen}; wrote {result.out}",
            highlight=False,
        )
    if json_out:
        print(json.dumps(result.to_json()))


@app.command("evaluate-encoder")
@library_errors
def evaluate_encoder(
    embeddings: Annotated[Path, typer.Argument(help="Embedding parquet (SQID layout) with labels.")],
    label_col: Annotated[str, typer.Option(help="Class label column.")],
    encoder: Annotated[Path, typer.Option(help="Encoder directory written by pairclass train.")],
    view: Annotated[
        Optional[str], typer.Option(help="Embedding column. Default: the one the encoder was trained on.")
    ] = None,
    id_col: Annotated[str, typer.Option(help="Item id column.")] = DEFAULT_ID_COL,
    test_classes: Annotated[
        Optional[Path], typer.Option(help="Text file, one class per line: evaluate on these only.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
):
    """Retrieval metrics (Recall@K, MAP@R, OPIS) of the raw embeddings and of the encoder.

    Example: pairclass evaluate-encoder emb.parquet --label-col category --encoder encoder/
    --test-classes unseen.txt --json
    """
    run_evaluate_encoder = needs_extra(".dml", "dml").run_evaluate_encoder

    result = run_evaluate_encoder(
        embeddings, encoder=encoder, label_col=label_col, view=view, id_col=id_col,
        test_classes=test_classes,
    )
    for note in result.warnings:
        err.print(f"[yellow]Warning:[/] {note}", highlight=False)
    if json_out:
        print(json.dumps(result.to_json()))
        return
    table = Table(title=f"retrieval on {result.n_items} items, {result.n_classes} classes")
    table.add_column("embeddings")
    keys = list(result.raw)
    for key in keys:
        table.add_column(key, justify="right")
    for name, row in (("raw", result.raw), ("encoder", result.encoder)):
        table.add_row(name, *[f"{row[k]:.3f}" for k in keys])
    err.print(table)
