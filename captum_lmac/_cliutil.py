"""What every ``captum-lmac`` subcommand shares: one-line errors and exit statuses.

- Bad input (:class:`~captum_lmac.errors.InputError`, ``DataNotFoundError``, ``CheckpointError``,
  ``NotFittedError``), an ``OSError`` and a command-line usage error are reported as **one line**
  on stderr (``captum-lmac <command>: error: <message>``) with exit status **2**, no traceback.
- Ctrl-C: ``interrupted``, exit status 130.
- Anything else is a bug: one line naming the exception, exit status 1; set the environment
  variable ``CAPTUM_LMAC_TRACEBACK=1`` to get the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, NoReturn

from ._validate import one_line
from .errors import CheckpointError, DataNotFoundError, InputError, NotFittedError

USER_ERRORS = (InputError, DataNotFoundError, CheckpointError, NotFittedError)

#: Exit statuses.
EXIT_OK, EXIT_INTERNAL, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130

TRACEBACK_ENV = "CAPTUM_LMAC_TRACEBACK"


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line on stderr (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def error_line(prog: str, message: Any) -> None:
    """Print ``<prog>: error: <message>`` as one line on stderr."""
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)


def os_error_message(exc: OSError) -> str:
    """An OSError as a sentence naming the file."""
    what = exc.strerror or type(exc).__name__
    name = f": {exc.filename}" if getattr(exc, "filename", None) else ""
    return f"{what}{name}"


def run_command(prog: str, func: Callable[..., Any], *args: Any) -> int:
    """Run ``func(*args)`` as the body of a subcommand and return its exit status (see the module docstring)."""
    try:
        return int(func(*args) or 0)
    except SystemExit as exc:  # argparse (--help, usage errors) and sub-mains that exit
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_USER)
    except USER_ERRORS as exc:
        error_line(prog, exc)
        return EXIT_USER
    except OSError as exc:
        error_line(prog, os_error_message(exc))
        return EXIT_USER
    except KeyboardInterrupt:
        error_line(prog, "interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: one line, unless the traceback is asked for
        if os.environ.get(TRACEBACK_ENV):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error_line(prog, f"unexpected {type(exc).__name__}: {first} (this is a bug; set {TRACEBACK_ENV}=1 "
                         "to see the traceback)")
        return EXIT_INTERNAL


__all__ = ["USER_ERRORS", "ArgumentParser", "error_line", "os_error_message", "run_command", "EXIT_OK",
           "EXIT_INTERNAL", "EXIT_USER", "EXIT_INTERRUPTED", "TRACEBACK_ENV"]
