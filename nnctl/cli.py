"""The `nnctl` command line: each command parses, calls one library function, prints.

Heavy modules (numpy, pydantic, the registry) are imported inside commands so `nnctl --help` is fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from nnctl import __version__
from nnctl.errors import EXIT_BUG, EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE

app = typer.Typer(
    help="Train neural networks from YAML experiment files with a small NumPy engine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ConfigPath = Annotated[Path, typer.Argument(help="Experiment YAML file.", show_default=False)]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set", "-s", help="Override a config value: --set optimizer.lr=0.01 (repeatable; model.layers[0].units=16)."
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print exactly one JSON document on stdout; everything else goes to stderr.")
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show the traceback of errors.")]


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


def user_errors(func: Callable) -> Callable:
    """Map user mistakes to a short red message and exit 2 (no traceback unless --debug)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from nnctl.errors import DivergedError, NnctlError

        debug = kwargs.get("debug", False)
        try:
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
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Train the experiment in CONFIG (writes runs/<name>/<stamp>/), or continue one with --resume RUN_DIR."""
    from nnctl.console import ConsoleReporter, make_console, stdout_json
    from nnctl.errors import DivergedError
    from nnctl.errors import NnctlError
    from nnctl.session import resume_training, run_training
    from nnctl.train.trainer import SilentReporter, StopFlag

    if (config is None) == (resume is None):
        raise NnctlError("give either a CONFIG file to train or --resume RUN_DIR to continue a run (not both).")
    if resume is not None and set_:
        raise NnctlError("--set cannot change a resumed run (it must continue exactly); train a new run instead.")
    console = make_console(stderr=json_)
    reporter = SilentReporter() if quiet else ConsoleReporter(console)
    stop = StopFlag()
    stop.install()
    if resume is not None:
        result = resume_training(resume, reporter=reporter, stop=stop, allow_plugins=allow_plugins)
    else:
        result = run_training(config, set_ or [], runs_dir=runs_dir, reporter=reporter, stop=stop)
    if json_:
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
            }
        )
    if result.status == "diverged":
        raise DivergedError(
            f"training diverged (loss became NaN or Inf); the last good checkpoint is kept in {result.run_dir}."
        )
    if result.status == "interrupted":
        import signal

        raise typer.Exit(code=EXIT_TERMINATED if result.signum == signal.SIGTERM else EXIT_INTERRUPTED)


@app.command("eval")
@user_errors
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by `nnctl train`.", show_default=False)],
    split: Annotated[str, typer.Option(help="Which split to score: test, val or train.")] = "test",
    checkpoint: Annotated[str, typer.Option(help="best or last.")] = "best",
    allow_plugins: Annotated[
        bool, typer.Option("--allow-plugins", help="Import the plugins the run's config names.")
    ] = False,
    json_: JsonOption = False,
    debug: DebugOption = False,
) -> None:
    """Score a trained run on a split (test by default)."""
    from nnctl.console import make_console, metrics_table, stdout_json
    from nnctl.errors import NnctlError
    from nnctl.train.evaluate import evaluate_run

    if split not in ("train", "val", "test"):
        raise NnctlError(f"--split must be train, val or test, got '{split}'.")
    if checkpoint not in ("best", "last"):
        raise NnctlError(f"--checkpoint must be best or last, got '{checkpoint}'.")
    result = evaluate_run(run_dir, split, checkpoint, allow_plugins)
    if json_:
        stdout_json({"run_dir": str(run_dir), "checkpoint": checkpoint, **result})
    else:
        make_console().print(
            metrics_table(
                f"{run_dir} — {split} ({result['samples']} samples, {checkpoint} checkpoint)", result["metrics"]
            )
        )


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
    from nnctl.data.preview import write_preview

    path = write_preview(config, set_ or [], output, samples, variants)
    typer.echo(f"wrote {path}")


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


def run() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    sys.exit(app())
