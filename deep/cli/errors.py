"""One error convention for every command line of the project (``python -m deep``, ``ray_jobs``,
``figures``, ``theory``).

- A *user error* (bad flag value, missing or corrupt file, a folder where a file is expected, an
  output folder held by another command, an argparse usage error) prints ONE line,
  ``<prog>: error: <message>``, to stderr and exits with status 2. The message names the bad value
  and what is allowed; the libraries raise it that way (docs/DESIGN.md, Conventions).
- Ctrl-C prints one line saying what was saved and how to resume, and exits with status 130
  (128 + SIGINT, the shell convention).
- ``--debug`` anywhere on the command line (or ``ADVFEAT_DEBUG=1``) re-raises instead, so the full
  traceback is shown. Any other exception is a bug and always keeps its traceback.

Usage in an entry point: ``raise SystemExit(run_cli(main, prog="python -m deep"))``.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

#: Exit status of a user error (argparse's own convention) and of Ctrl-C (128 + SIGINT).
EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130
DEBUG_FLAG = "--debug"
DEBUG_ENV = "ADVFEAT_DEBUG"

Interrupted = str | Callable[[Sequence[str]], str]


class UsageError(Exception):
    """An argparse usage error, raised instead of argparse's multi-line usage + exit."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(message)
        self.prog = prog


def user_error_types() -> tuple[type[BaseException], ...]:
    """Exception types that mean "the input was bad", not "the code is wrong"."""
    types: list[type[BaseException]] = [ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                                        FileExistsError, PermissionError, zipfile.BadZipFile, UsageError]
    from deep.io import CorruptFileError, OutputLockedError  # late: keeps `--help` quick

    return (*types, OutputLockedError, CorruptFileError)


def debug_requested(argv: Sequence[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")


def one_line(err: BaseException) -> str:
    """The error's message on one line (multi-line messages are joined with '; ')."""
    text = str(err).strip() or type(err).__name__
    if isinstance(err, KeyError):  # KeyError quotes its message
        text = text.strip("'\"")
    return "; ".join(part.strip() for part in text.splitlines() if part.strip())


@contextlib.contextmanager
def _argparse_raises() -> Iterator[None]:
    """argparse prints usage plus the error and exits; make it raise UsageError for one-line output.

    Patched on the class for the duration of the command because the four packages build their own
    parsers (and sub-parsers); this keeps those parsers plain ``argparse.ArgumentParser``s.
    """
    original = argparse.ArgumentParser.error

    def error(self: argparse.ArgumentParser, message: str) -> NoReturn:
        raise UsageError(self.prog, message)

    argparse.ArgumentParser.error = error  # type: ignore[method-assign]
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original  # type: ignore[method-assign]


def run_cli(main: Callable[[list[str]], int | None], argv: Sequence[str] | None = None, *, prog: str,
            interrupted: Interrupted = "nothing was saved; rerun the command") -> int:
    """Call ``main(argv)`` under the project's error convention and return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(args)
    args = [a for a in args if a != DEBUG_FLAG]
    try:
        with _argparse_raises():
            return int(main(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        hint = interrupted(args) if callable(interrupted) else interrupted
        print(f"\n{prog}: interrupted (Ctrl-C); {hint}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except user_error_types() as err:
        if debug:
            raise
        where = err.prog if isinstance(err, UsageError) else prog
        extra = f" (see {where} --help)" if isinstance(err, UsageError) else ""
        print(f"{where}: error: {one_line(err)}{extra}", file=sys.stderr)
        return EXIT_USER_ERROR
