"""The one exception type for user mistakes, and the exit codes the CLI maps outcomes to."""

from __future__ import annotations

EXIT_OK = 0
EXIT_BUG = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_SOME_FAILED = 4  # `nnctl sweep`: the sweep finished, but some of its trials failed
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class NnctlError(Exception):
    """A mistake in the user's config, data, paths or shapes: printed without a traceback, exit 2."""

    exit_code = EXIT_USAGE
    # The config key the mistake is about, e.g. ("data", "source", "columns", "age"): where the config was read
    # from a file, nnctl.config.config_lines puts that key's YAML line (or its --set) in front of the message.
    key: tuple | None = None


def keyed(exc: NnctlError, *key: str | int) -> NnctlError:
    """`exc` about config key `key` (see NnctlError.key): raise keyed(ConfigError(...), "data", "source", ...)."""
    exc.key = tuple(key)
    return exc


class ConfigError(NnctlError):
    """The experiment file (or a --set override) is invalid."""


class DataError(NnctlError):
    """A data file or data source is unusable (NaN, ragged rows, unknown column ...)."""


class DivergedError(Exception):
    """Training produced a NaN or Inf loss; the run keeps its last good checkpoint."""

    exit_code = EXIT_DIVERGED
