"""The `nnctl` command line: each command parses, calls one library function, prints.

Heavy modules (numpy, pydantic, the registry) are imported inside commands so `nnctl --help` is fast.
"""

from __future__ import annotations

import functools
import re
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from nnctl.errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE
from nnctl.version import __version__


def _tidy_metavars(params: list) -> list:
    """Help without typer's type labels where they say nothing: no `<bool>` after a flag, and
    arguments named in capitals (`CONFIG`, `RUN_DIR`), as the command descriptions spell them."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif isinstance(param, TyperArgument) and param.metavar is None:
            param.metavar = param.name.upper()
        if param.nargs != 1 and "display_type_rich" not in vars(param):  # <list[Path]> -> <path>...
            shown = param.display_type_rich
            param.display_type_rich = lambda ctx, shown=shown: re.sub(
                r"<list\[(\w+)\]>", lambda m: f"<{m.group(1).lower()}>...", shown(ctx) or ""
            )
    return params


class _Command(TyperCommand):
    def get_params(self, ctx) -> list:
        return _tidy_metavars(super().get_params(ctx))


class _Group(TyperGroup):
    def get_params(self, ctx) -> list:
        return _tidy_metavars(super().get_params(ctx))


class _Typer(typer.Typer):
    def command(self, *args, **kwargs):
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


app = _Typer(
    cls=_Group,
    help="Train neural networks from YAML experiment files with a small NumPy engine.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)

ConfigPath = Annotated[Path, typer.Argument(help="Experiment YAML file.", show_default=False)]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        metavar="KEY=VALUE",
        help="Override a config value: --set optimizer.lr=0.01 (repeatable; model.layers[0].units=16).",
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout; everything else goes to stderr.")
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the traceback of errors.")]


def _device_option(help_text: str):
    return Annotated[str | None, typer.Option("--device", help=help_text, show_default=False)]


TrainDeviceOption = _device_option(
    "cpu, cuda or cuda:N (GPU N, through CuPy: pip install 'nnctl\\[gpu]'); same as --set train.device=...; "
    "with --resume: continue on this device."
)
ReopenDeviceOption = _device_option(
    "Where the network runs: cpu (default, whatever the run was trained on), cuda or cuda:N."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nnctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Train neural networks from YAML experiment files with a small NumPy engine."""


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    from nnctl.console import make_console, styled

    # The console reads no markup: the style is given as Text, the message printed as it is.
    make_console(stderr=True).print(styled(("warning:", "yellow"), " ", str(message)))


def user_errors(func: Callable) -> Callable:
    """Map user mistakes to a short red message and exit 2 (no traceback unless --debug)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from nnctl.errors import DivergedError, NnctlError

        debug = kwargs.get("debug", False)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning  # "warning: ..." on stderr, not a source line
                return func(*args, **kwargs)
        except (NnctlError, DivergedError) as exc:
            if debug:
                raise
            from nnctl.console import print_error

            print_error(str(exc))
            raise typer.Exit(code=getattr(exc, "exit_code", EXIT_USAGE)) from None
        except KeyboardInterrupt:
            raise typer.Exit(code=EXIT_INTERRUPTED) from None

    return wrapper


@app.command()
@user_errors
def train(
    config: Annotated[Path | None, typer.Argument(help="Experiment YAML file.", show_default=False)] = None,
    set_: SetOption = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue the run in this directory from its last checkpoint.")
    ] = None,
    allow_plugins: Annotated[
        bool, typer.Option("--allow-plugins", help="With --resume: import the plugins the run's config names.")
    ] = False,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Folder for run directories (default: output.runs_dir).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    threads: Annotated[
        str | None,
        typer.Option(
            "--threads", help="BLAS threads: auto or a number (same as --set train.threads=...).", show_default=False
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Train on N processes of this machine: data-parallel over MPI (pip install 'nnctl\\[mpi]'); "
            "train.batch_size stays the global batch. On a cluster start `mpiexec -n N nnctl train ...` instead.",
            show_default=False,
        ),
    ] = None,
    device: TrainDeviceOption = None,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Train the experiment in CONFIG (writes runs/<name>/<stamp>/), or continue one with --resume RUN_DIR."""
    from nnctl.errors import NnctlError
    from nnctl.parallel import world_size

    if (config is None) == (resume is None):
        raise NnctlError("give either a CONFIG file to train or --resume RUN_DIR to continue a run (not both).")
    if resume is not None and (set_ or threads):
        raise NnctlError(
            "--set and --threads cannot change a resumed run (it must continue exactly); train a new run instead."
        )
    if threads is not None:
        set_ = [*(set_ or []), f"train.threads={threads}"]
    if device is not None and resume is None:
        set_ = [*(set_ or []), f"train.device={device}"]
    if workers is not None:
        if workers < 1:
            raise NnctlError(f"--workers must be at least 1, got {workers}.")
        if world_size() > 1:
            raise NnctlError(
                f"--workers: this process already runs in an MPI world of {world_size()} ranks; "
                "start it without --workers (mpiexec -n N nnctl train ...)."
            )
    if workers is not None and workers > 1:
        from nnctl.parallel import launch

        args = ["train", *([str(config)] if config is not None else [])]
        args += [part for value in set_ or [] for part in ("--set", value)]
        args += ["--resume", str(resume)] if resume is not None else []
        args += ["--runs-dir", str(runs_dir)] if runs_dir is not None else []
        args += ["--device", device] if device is not None and resume is not None else []
        flags = {"--allow-plugins": allow_plugins, "--quiet": quiet, "--json": json_, "--debug": debug}
        args += [flag for flag, on in flags.items() if on]
        raise typer.Exit(code=launch(workers, args, on_death=_record_lost_rank))
    _train_here(config, set_ or [], resume, allow_plugins, runs_dir, quiet, json_, device)


def _record_lost_rank(run_dir: str, error: str) -> None:
    """summary.json of a job whose rank died says `failed` and why (it said `running`: every rank was killed)."""
    from nnctl.runs.rundir import RunDir

    RunDir(Path(run_dir)).mark_failed(error, only_if_running=True)


def _train_here(config, set_, resume, allow_plugins, runs_dir, quiet, json_, device=None) -> None:
    """`nnctl train` in this process: alone, or as one rank of an MPI world (rank 0 prints and writes)."""
    from nnctl.console import ConsoleReporter, make_console, print_error, stdout_json
    from nnctl.errors import DivergedError, NnctlError
    from nnctl.parallel import world
    from nnctl.session import resume_training, run_training
    from nnctl.train.trainer import StopFlag

    comm = world()
    first = comm.rank == 0
    console = make_console(stderr=json_)
    reporter = None if quiet or not first else ConsoleReporter(console)
    stop = StopFlag()
    stop.install()
    if comm.size > 1 and first and not quiet:
        from collections import Counter

        hosts = ", ".join(f"{host} x{count}" for host, count in Counter(comm.hosts).items())
        console.print(f"data-parallel: {comm.size} workers ({hosts}); global batch = train.batch_size")
    try:
        if resume is not None:
            note = (lambda text: console.print(f"[yellow]note:[/] {text}")) if not quiet else None
            result = resume_training(
                resume, reporter=reporter, stop=stop, allow_plugins=allow_plugins, comm=comm, notify=note, device=device
            )
            if result.stop_reason == "already_completed" and first:
                make_console(stderr=True).print(
                    f"{result.run_dir} already completed ({result.epochs} epochs); nothing to resume. To train "
                    "longer, start a new run from its config.yaml with --set train.epochs=N."
                )
        else:
            result = run_training(config, set_, runs_dir=runs_dir, reporter=reporter, stop=stop, comm=comm)
    except Exception as exc:
        if comm.size == 1:
            raise
        code = getattr(exc, "exit_code", EXIT_BUG)
        if getattr(exc, "agreed", False):  # every rank failed the same way: rank 0 says it once
            if first:
                raise
            raise typer.Exit(code=code) from None
        # This rank failed alone (a bug, a full disk): say which, then stop every rank instead of hanging.
        if isinstance(exc, NnctlError):
            print_error(f"rank {comm.rank} ({comm.hosts[comm.rank]}): {exc}")
        else:
            import traceback

            sys.stderr.write(f"rank {comm.rank} ({comm.hosts[comm.rank]}) failed:\n{traceback.format_exc()}")
        comm.abort(code)
        raise
    comm.close()  # every rank returned from training: release the shared-memory window together
    if json_ and first:
        stdout_json(
            {
                "run_dir": str(result.run_dir),
                "status": result.status,
                "epochs": result.epochs,
                "steps": result.steps,
                "seconds": round(result.seconds, 3),
                "final": result.final,
                "best": result.best,
                "stop_reason": result.stop_reason,
                **({"workers": comm.size} if comm.size > 1 else {}),
            }
        )
    if result.status == "diverged":
        if not first:
            raise typer.Exit(code=DivergedError.exit_code)
        raise DivergedError(
            f"training diverged (loss became NaN or Inf); the last good checkpoint is kept in {result.run_dir}."
        )
    if result.status == "interrupted":
        import signal

        raise typer.Exit(code=EXIT_TERMINATED if result.signum == signal.SIGTERM else EXIT_INTERRUPTED)


@app.command()
@user_errors
def cv(
    config: ConfigPath,
    folds: Annotated[int, typer.Option("--folds", "-k", help="Number of folds (stratified for classification).")] = 5,
    repeats: Annotated[int, typer.Option("--repeats", help="Repeat the k-fold cut R times, each a new shuffle.")] = 1,
    parallel: Annotated[int, typer.Option("--parallel", "-j", help="Folds trained at once (worker processes).")] = 1,
    set_: SetOption = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Folder under which <name>/cv-<stamp>/ is created.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No per-fold progress lines.")] = False,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """k-fold cross-validation of CONFIG: each fold a normal run under one cv folder; mean ± std per metric.
    Exit 4 when a fold diverged; 130/143 when stopped (the finished folds are summarised)."""
    import signal

    from nnctl.console import make_console, stdout_json
    from nnctl.cv import cv_table, run_cv
    from nnctl.errors import EXIT_SOME_FAILED
    from nnctl.train.trainer import StopFlag

    err = make_console(stderr=True)

    def progress(rec: dict) -> None:
        if not quiet:
            shown = "  ".join(f"{k} {v:.4f}" for k, v in rec["metrics"].items())
            err.print(f"repeat {rec['repeat']} fold {rec['fold']}: {rec['status']}, {rec['epochs']} epochs  {shown}")

    stop = StopFlag()
    stop.install()
    result = run_cv(config, set_ or [], folds, repeats, parallel, runs_dir, progress, stop)
    if json_:
        stdout_json(result.document())
    else:
        console = make_console()
        if not console.is_terminal:
            console.width = max(console.width, 160)  # piped: one line per fold rather than squeezed cells
        console.print(cv_table(result))
        console.print(f"wrote {result.path / 'summary.json'} and {result.path / 'folds.csv'}")
    if result.settings["status"] == "interrupted":
        raise typer.Exit(code=EXIT_TERMINATED if stop.signum == signal.SIGTERM else EXIT_INTERRUPTED)
    if result.settings["status"] == "some_failed":
        raise typer.Exit(code=EXIT_SOME_FAILED)


@app.command()
@user_errors
def convert(
    data: Annotated[Path, typer.Argument(help="CSV file (.csv or .csv.gz) with a header row.", show_default=False)],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="New (or empty) directory for the shards.", show_default=False)
    ],
    target: Annotated[str, typer.Option("--target", help="Name of the target column.", show_default=False)],
    task: Annotated[str, typer.Option(help="auto, classification or regression (as the csv source).")] = "auto",
    delimiter: Annotated[str, typer.Option(help="Field separator, one character.")] = ",",
    dtype: Annotated[str, typer.Option(help="Feature dtype of the shards: float32 or float64.")] = "float32",
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Turn a CSV bigger than memory into .npy shards (read in chunks, bounded memory) for `source: {type: shards}`."""
    from nnctl.errors import NnctlError

    if task not in ("auto", "classification", "regression"):
        raise NnctlError(f"--task must be auto, classification or regression, got '{task}'.")
    if dtype not in ("float32", "float64"):
        raise NnctlError(f"--dtype must be float32 or float64, got '{dtype}'.")
    if len(delimiter) != 1:
        raise NnctlError(f"--delimiter must be one character, got '{delimiter}'.")
    from nnctl.data.convert import convert_csv

    meta = convert_csv(data, out, target, task, delimiter, dtype)  # type: ignore[arg-type]
    if json_:
        from nnctl.console import stdout_json

        stdout_json(
            {
                "out": str(out),
                **{k: meta[k] for k in ("task", "rows", "class_names", "dtype")},
                "shards": len(meta["shards"]),
            }
        )
    else:
        classes = f", {len(meta['class_names'])} classes" if meta["class_names"] else ""
        typer.echo(
            f"wrote {meta['rows']:,} rows x {len(meta['feature_names'])} features ({meta['task']}{classes}) in "
            f"{len(meta['shards'])} shards to {out}; train on it with data: {{source: {{type: shards, path: {out}}}}}"
        )


@app.command("eval")
@user_errors
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `nnctl train`.", show_default=False)],
    split: Annotated[
        str | None,
        typer.Option(
            help="Which split to score: test, val or train. Default: test; val when the run has no test split "
            "(a converted Playground link: its test data is the validation split).",
            show_default=False,
        ),
    ] = None,
    checkpoint: Annotated[
        str | None,
        typer.Option(
            help="best or last. Default: best when the run monitors a validation value; else last, since "
            "without a validation split 'best' would only mean the lowest training loss.",
            show_default=False,
        ),
    ] = None,
    allow_plugins: Annotated[
        bool, typer.Option("--allow-plugins", help="Import the plugins the run's config names.")
    ] = False,
    device: ReopenDeviceOption = None,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Score a trained run on a split (test by default; val when the run has no test split)."""
    from nnctl.console import make_console, metrics_table, print_note, stdout_json
    from nnctl.errors import NnctlError
    from nnctl.train.evaluate import evaluate_run

    if split is None:
        split = _default_split(run_dir)
    if split not in ("train", "val", "test"):
        raise NnctlError(f"--split must be train, val or test, got '{split}'.")
    checkpoint = _checkpoint_or_default(run_dir, checkpoint)
    result = evaluate_run(run_dir, split, checkpoint, allow_plugins, device or "cpu")
    from nnctl.train.report import confusion_table, per_class_table, save_eval

    try:  # eval/<split>-<checkpoint>.json (+ -confusion.csv) in the run directory
        written = [str(p) for p in save_eval(run_dir, checkpoint, result)]
    except OSError as exc:
        written = []
        print_note(f"could not save the evaluation in {run_dir}: {exc}")
    if json_:
        stdout_json({"run_dir": str(run_dir), "checkpoint": checkpoint, **result, "files": written})
    else:
        console = make_console()
        console.print(
            metrics_table(
                f"{run_dir} — {split} ({result['samples']} samples, {checkpoint} checkpoint)", result["metrics"]
            )
        )
        if "per_class" in result:
            console.print(per_class_table(result))
            console.print(confusion_table(result))
        for path in written:
            console.print(f"wrote {path}")


@app.command()
@user_errors
def init(
    example: Annotated[
        str | None, typer.Argument(help="Example to copy (run without it to list them).", show_default=False)
    ] = None,
    directory: Annotated[Path, typer.Argument(help="Folder to write into (created if missing).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite files that already exist.")] = False,
    debug: DebugOption = False,
) -> None:
    """Copy a commented example config into DIRECTORY (with a small input file for `nnctl predict`), or list the examples."""
    from nnctl.console import make_console
    from nnctl.scaffold import example_table, init_example

    console = make_console()
    if example is None:
        if not console.is_terminal:
            console.width = max(console.width, 160)  # piped: one line per example rather than squeezed cells
        console.print(example_table())
        console.print("copy one with: nnctl init NAME [DIR]")
        return
    ex, written = init_example(example, directory, force)
    for path in written:
        console.print(f"wrote {path}")
    config = written[0]
    if ex.kind == "sweep":
        console.print(f"run it with: nnctl sweep {config}")
        return
    console.print(f"train it with: nnctl train {config}")
    inputs = [p for p in written if p.suffix == ".csv"]
    if inputs:
        console.print(f"then predict: nnctl predict runs/{ex.name}/<stamp> {inputs[0]} --proba")


@app.command()
@user_errors
def validate(
    config: ConfigPath,
    set_: SetOption = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Mark where each value came from: file, --set or default.")
    ] = False,
    debug: DebugOption = False,
) -> None:
    """Check CONFIG, print the resolved config and the network summary, without training."""
    from nnctl.session import describe_config

    typer.echo(describe_config(config, set_ or [], explain=explain))


@app.command()
def schema() -> None:
    """Print the JSON Schema of experiment files (for editor completion and checking)."""
    import json

    from nnctl.config import experiment_model

    typer.echo(json.dumps(experiment_model().model_json_schema(), indent=2))


@app.command("list")
@user_errors
def list_(
    kind: Annotated[str, typer.Argument(help="layers, losses, optimizers, datasets or metrics.")],
    debug: DebugOption = False,
) -> None:
    """List the registered components of a kind, with their parameters."""
    from nnctl.console import make_console
    from nnctl.session import component_table

    make_console().print(component_table(kind))


@app.command()
@user_errors
def gradcheck(
    config: ConfigPath,
    set_: SetOption = None,
    samples: Annotated[int, typer.Option(help="Batch size of the random input.")] = 4,
    debug: DebugOption = False,
) -> None:
    """Finite-difference gradient check (float64) of the network and loss in CONFIG."""
    from nnctl.console import make_console
    from nnctl.session import gradcheck_config

    table, ok = gradcheck_config(config, set_ or [], samples)
    make_console().print(table)
    if not ok:
        raise typer.Exit(code=EXIT_BUG)


@app.command()
@user_errors
def augment(
    config: ConfigPath,
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write (PNG, PDF, SVG ...).")] = Path(
        "augment_preview.png"
    ),
    set_: SetOption = None,
    samples: Annotated[int, typer.Option(min=1, help="Training samples to show (rows).")] = 8,
    variants: Annotated[int, typer.Option(min=1, help="Augmented copies of each (columns).")] = 5,
    debug: DebugOption = False,
) -> None:
    """Draw training samples next to augmented copies (data.augment), as the network sees them; needs matplotlib."""
    from nnctl.viz.augment_preview import write_preview

    path = write_preview(config, set_ or [], output, samples, variants)
    typer.echo(f"wrote {path}")


@app.command()
@user_errors
def sweep(
    sweep_file: Annotated[Path | None, typer.Argument(help="Sweep YAML file.", show_default=False)] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="A sweep folder to finish: runs only its missing trials.")
    ] = None,
    allow_plugins: Annotated[
        bool, typer.Option("--allow-plugins", help="With --resume: import the plugins the sweep folder names.")
    ] = False,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="With --resume: run the trials recorded as failed again.")
    ] = False,
    parallel: Annotated[
        int,
        typer.Option(
            "--parallel",
            "-j",
            help="Trials at once (local worker processes). With train.device: cuda, each worker is pinned to one "
            "GPU in turn (CUDA_VISIBLE_DEVICES).",
        ),
    ] = 1,
    executor: Annotated[str, typer.Option(help="local (worker processes) or dask (a Dask cluster).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="Dask scheduler, e.g. tcp://scheduler:8786 (default: a local cluster).")
    ] = None,
    runs_dir: Annotated[
        Path | None, typer.Option("--runs-dir", help="Folder under which sweeps/<name>/<stamp>/ is created.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Run a hyperparameter sweep (grid, random or tpe); exit 4 when some trials failed."""
    from nnctl.console import make_console, stdout_json
    from nnctl.errors import NnctlError
    from nnctl.sweep.executors import check_executor, make_executor, sweep_gpus
    from nnctl.sweep.live import SilentView, SweepView
    from nnctl.sweep.runner import Runner, open_sweep, prepare_sweep

    if (sweep_file is None) == (resume is None):
        raise NnctlError("give a sweep file, or --resume SWEEP_DIR (not both).")
    if retry_failed and resume is None:
        raise NnctlError("--retry-failed goes with --resume SWEEP_DIR.")
    check_executor(executor, address)  # before the sweep folder is written
    plan = open_sweep(resume, allow_plugins, retry_failed) if resume else prepare_sweep(sweep_file, runs_dir)
    view = SilentView() if quiet else SweepView(make_console(stderr=json_))
    gpus = sweep_gpus(plan.base, parallel) if executor == "local" else None  # one trial per GPU
    outcome = Runner(plan, make_executor(executor, parallel, address, gpus), view).run()
    if json_:
        best = outcome.best
        stdout_json(
            {
                "sweep_dir": str(outcome.path),
                "status": outcome.status,
                "counts": outcome.counts(),
                "best": best and {k: best.get(k) for k in ("trial", "objective", "params", "metrics", "run_dir")},
                "best_config": str(outcome.path / "best.yaml") if best else None,
            }
        )
    if outcome.exit_code:
        raise typer.Exit(code=outcome.exit_code)


def _default_split(run_dir: Path) -> str:
    """test, or val when the run's config gives the test split nothing (saying so)."""
    from nnctl.runs.rundir import RunDir

    split, note = RunDir(run_dir).default_eval_split()
    if note:
        from nnctl.console import print_note

        print_note(note)
    return split


def _checkpoint_or_default(run_dir: Path, checkpoint: str | None) -> str:
    """--checkpoint as given, else the run's default (best, or last when it monitors no validation value)."""
    from nnctl.errors import NnctlError
    from nnctl.runs.rundir import CHECKPOINT_NAMES, RunDir

    if checkpoint is not None:
        if checkpoint not in CHECKPOINT_NAMES:
            raise NnctlError(f"--checkpoint must be best or last, got '{checkpoint}'.")
        return checkpoint
    checkpoint, note = RunDir(run_dir).default_checkpoint()
    if note:
        from nnctl.console import print_note

        print_note(note)
    return checkpoint


RunDirArgument = Annotated[Path, typer.Argument(help="A run directory written by `nnctl train`.", show_default=False)]
CheckpointOption = Annotated[
    str | None,
    typer.Option(
        help="best or last. Default: best when the run monitors a validation value; else last (saying so).",
        show_default=False,
    ),
]
AllowPluginsOption = Annotated[bool, typer.Option("--allow-plugins", help="Import the plugins the run's config names.")]


@app.command()
@user_errors
def plot(
    run_dir: RunDirArgument,
    kind: Annotated[
        list[str] | None,
        typer.Option(
            "--kind",
            "-k",
            metavar="KIND",
            help="curves, playground, fit, confusion or misclassified (repeatable; default: every kind that fits the run).",
        ),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the PNGs (default: RUN_DIR/plots).")
    ] = None,
    checkpoint: CheckpointOption = None,
    allow_plugins: AllowPluginsOption = False,
    debug: DebugOption = False,
) -> None:
    """Draw a run as PNGs: learning curves, the Playground picture or the fitted curve, confusion matrix, misclassified images; needs matplotlib."""
    from nnctl.viz.plots import write_plots

    checkpoint = _checkpoint_or_default(run_dir, checkpoint)
    for path in write_plots(run_dir, kind or None, output, checkpoint, allow_plugins):
        typer.echo(f"wrote {path}")


@app.command()
@user_errors
def compare(
    run_dirs: Annotated[
        list[Path], typer.Argument(help="Run directories (a sweep folder stands for its trials).", show_default=False)
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Image file to write.")] = Path("compare.png"),
    debug: DebugOption = False,
) -> None:
    """Overlay several runs' learning curves, labelled by what differs between their configs; needs matplotlib."""
    from nnctl.viz.compare import write_compare

    typer.echo(f"wrote {write_compare(run_dirs, output)}")


@app.command()
@user_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory or a sweep folder.", show_default=False)],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="HTML file to write (default: RUN_DIR/report.html).")
    ] = None,
    checkpoint: CheckpointOption = None,
    allow_plugins: AllowPluginsOption = False,
    debug: DebugOption = False,
) -> None:
    """Write one self-contained HTML report (config, network, metrics, plots, status) of a run or a sweep."""
    from nnctl.console import print_note
    from nnctl.viz.report import write_report

    checkpoint = _checkpoint_or_default(run_dir, checkpoint)
    path, notes = write_report(run_dir, output, checkpoint, allow_plugins)
    for note in notes:
        print_note(note)
    typer.echo(f"wrote {path}")


@app.command()
@user_errors
def playground(
    url: Annotated[
        str,
        typer.Argument(
            help="A TensorFlow Playground link, quoted: 'https://playground.tensorflow.org/#...'.", show_default=False
        ),
    ],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Config file to write (default: print it).")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="train.epochs (the Playground runs until you pause it).")] = 500,
    compat: Annotated[
        bool,
        typer.Option(
            "--compat/--no-compat",
            help="The Playground's own loss, initialisation and update (default), or nnctl's usual choices.",
        ),
    ] = True,
    debug: DebugOption = False,
) -> None:
    """Turn a TensorFlow Playground link into an nnctl config that trains the same experiment."""
    from nnctl.playground_url import config_yaml

    text = config_yaml(url, compat, epochs)
    if output is None:
        typer.echo(text, nl=False)
        return
    from nnctl.runs.files import atomic_write

    atomic_write(output, text.encode("utf-8"))
    typer.echo(f"wrote {output}; train it with: nnctl train {output}")


@app.command()
@user_errors
def predict(
    run_dir: RunDirArgument,
    input_file: Annotated[
        Path,
        typer.Argument(
            help="Inputs: .csv with the training feature columns by name, or .npz with array x.", show_default=False
        ),
    ],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="CSV file to write (default: stdout).")] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Add one probability column per class (proba_<class>).")
    ] = False,
    checkpoint: Annotated[
        str | None,
        typer.Option(help="best or last (default: as for nnctl eval).", show_default=False),
    ] = None,
    allow_plugins: AllowPluginsOption = False,
    device: ReopenDeviceOption = None,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Predict INPUT with a trained run: stored normalization (and Playground features) applied; CSV out."""
    from nnctl.predict import predict_file, predictions_csv

    checkpoint = _checkpoint_or_default(run_dir, checkpoint)
    result = predict_file(run_dir, input_file, output, proba, checkpoint, allow_plugins, device or "cpu")
    if json_:
        from nnctl.console import stdout_json

        document = {
            "run_dir": str(run_dir),
            "checkpoint": checkpoint,
            "input": str(input_file),
            "samples": result.samples,
            "output": str(result.output) if result.output else None,
            "classes": result.classes,
            "columns": result.columns,
        }
        if result.output is None:
            document["rows"] = result.rows
        stdout_json(document)
    elif result.output is None:
        sys.stdout.write(predictions_csv(result.columns, result.rows))
    else:
        typer.echo(f"wrote {result.samples} predictions to {result.output}", err=True)


@app.command()
@user_errors
def runs(
    runs_dir: Annotated[Path, typer.Argument(help="Folder holding <name>/<stamp>/ run directories.")] = Path("runs"),
    sort: Annotated[
        str | None,
        typer.Option(
            "--sort",
            help="Order by a final metric (val_accuracy, val_loss ...; best first: accuracy-like descending, losses "
            "ascending), best (the monitored best value), best.<column>, epochs, seconds, name. Default: by start.",
        ),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only runs with this status (completed, diverged ...; comma-separated)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only runs whose name contains this text.")] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="Reverse the order.")] = False,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Table of the runs under RUNS_DIR: status, epochs, best and final metrics, duration."""
    from nnctl.console import make_console, stdout_json
    from nnctl.runs.listing import list_runs, runs_table

    records = list_runs(runs_dir, sort, status, name, reverse)
    if json_:
        stdout_json(records)
    elif not records:
        make_console(stderr=True).print(f"no runs under {runs_dir}" + (" match the filters" if status or name else ""))
    else:
        console = make_console()
        if not console.is_terminal:
            console.width = max(console.width, 240)  # piped: one line per run rather than squeezed cells
        console.print(runs_table(records, f"{len(records)} run(s) under {runs_dir}"))


@app.command("export")
@user_errors
def export_(
    run_dir: RunDirArgument,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="ONNX file to write (default RUN/export/model-<checkpoint>.onnx)."),
    ] = None,
    checkpoint: CheckpointOption = None,
    opset: Annotated[int, typer.Option("--opset", help="ONNX opset version of the model.")] = 17,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Compare onnxruntime with nnctl on the run's test split, or val when it has none (needs onnxruntime).",
        ),
    ] = False,
    allow_plugins: AllowPluginsOption = False,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Export a trained run to ONNX: raw inputs in (normalization, Playground features inside), predictions out."""
    from nnctl.export.onnx_model import export_run

    checkpoint = _checkpoint_or_default(run_dir, checkpoint)
    result = export_run(run_dir, output, checkpoint, opset, allow_plugins)
    comparison = None
    if check:
        from nnctl.export.verify import compare_run

        comparison = compare_run(run_dir, result.path, _default_split(run_dir), checkpoint, allow_plugins)
    if json_:
        from nnctl.console import stdout_json

        stdout_json(
            {
                "run_dir": str(run_dir),
                "checkpoint": checkpoint,
                "output": str(result.path),
                "opset": result.opset,
                "bytes": result.size_bytes,
                "inputs": result.inputs,
                "outputs": result.outputs,
                "metadata": result.metadata,
                "check": comparison,
            }
        )
        return
    shapes = "; ".join(f"{v['name']} {v['dtype']} {v['shape']}" for v in result.inputs + result.outputs)
    typer.echo(f"wrote {result.path} ({result.size_bytes:,} bytes, opset {result.opset}): {shapes}")
    if comparison is not None:
        typer.echo(f"check on the {comparison['split']} split: " + ", ".join(f"{k} {v}" for k, v in comparison.items()))


@app.command()
@user_errors
def serve(
    run_dir: RunDirArgument,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind; 127.0.0.1 (this machine only) unless you mean otherwise.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    checkpoint: CheckpointOption = None,
    max_body: Annotated[
        int, typer.Option("--max-body", help="Largest request body in bytes; bigger ones get a 413.")
    ] = 8 * 1024 * 1024,
    allow_plugins: AllowPluginsOption = False,
    debug: DebugOption = False,
) -> None:
    """Serve a trained run over HTTP: POST /predict, GET /health, GET /metadata, OpenAPI page at /docs."""
    from nnctl.serve.app import serve as run_server

    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: binding {host}: other machines can reach this server (no authentication).", err=True)
    run_server(run_dir, host, port, _checkpoint_or_default(run_dir, checkpoint), allow_plugins, max_body)


def run() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    sys.exit(app())
