"""A user's mistake is one clear message, not a Python traceback.

The command-line entry points (``train``, ``evaluate``, ``viz``) run their work through
:func:`report_user_errors`. An exception that is a user's mistake (see :func:`user_message`)
prints ``Error: <message>`` on stderr and exits with status 1; anything else (a bug) keeps its
traceback. ``HYDRA_FULL_ERROR=1`` keeps every traceback, as Hydra does for its own errors.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import ParamSpec, TypeVar

from hydra.errors import InstantiationException
from omegaconf.errors import MissingMandatoryValue

__all__ = ["ConfigError", "report_user_errors", "user_message"]

P = ParamSpec("P")
R = TypeVar("R")

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
"""``src/hint_lightning``: exceptions raised by code below it are messages written for users."""
_OWN_ERROR_TYPES = (ValueError, TypeError, OSError, KeyError)
"""The types our own code raises for bad input (see the project's rules on bad input)."""
FULL_ERROR_HINT = "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace."


class ConfigError(ValueError):
    """A configuration the user must change: reported in one message, without a traceback."""


def _raised_by_us(traceback: TracebackType | None) -> bool:
    """Whether the innermost Python frame of ``traceback`` is in our package."""
    if traceback is None:
        return False
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    return traceback.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)


def _message(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error) or type(error).__name__


def user_message(error: BaseException) -> str | None:
    """The message to show for a user's mistake, or None when ``error`` looks like a bug.

    A user's mistake is a :class:`ConfigError` (checkpoints, settings, stored configs), a
    missing mandatory option (``???``), Lightning's ``MisconfigurationException`` (a trainer
    option), a missing file, or a ``ValueError``/``TypeError``/``OSError``/``KeyError`` raised
    by our own code (whose messages name the file, item or option). Hydra's wrapper around an
    error raised while building an object is looked through.
    """
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        return user_message(error.__cause__)
    if isinstance(error, MissingMandatoryValue) and getattr(error, "full_key", None):
        return f"{error.full_key} is required: pass {error.full_key}=..."
    if isinstance(error, ConfigError | MisconfigurationException):
        return _message(error)
    if isinstance(error, FileNotFoundError | NotADirectoryError | IsADirectoryError):
        return _message(error)
    if isinstance(error, _OWN_ERROR_TYPES) and _raised_by_us(error.__traceback__):
        return _message(error)
    return None


def report_user_errors(function: Callable[P, R]) -> Callable[P, R]:
    """Run ``function``; a user's mistake prints one message on stderr and exits with 1.

    Example:
        >>> @report_user_errors
        ... def main() -> None:
        ...     raise ConfigError("objective.weight=-1 is negative")
        >>> main()  # doctest: +SKIP
        Error: objective.weight=-1 is negative
    """

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except Exception as error:
            message = user_message(error)
            if message is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            sys.stdout.flush()
            print(f"Error: {message}\n{FULL_ERROR_HINT}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None

    return wrapper
