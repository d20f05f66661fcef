"""User errors: problems with the user's input, reported as one line with no traceback.

Tracebacks are for bugs. Anything a user can fix by changing a value, a path or a download raises
:class:`UserError`; the entry points turn it into ``translearn: error: ...`` on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake in the user's input; the message says what is wrong and how to fix it."""


class RunRefused(UserError):
    """A resume refused before anything ran: the run it names is left exactly as it was (no failure.json)."""


def exit_with(message: str, code: int = EXIT_USER_ERROR) -> NoReturn:
    """Print one line on stderr and exit; newlines in the message are folded so it stays one line."""
    line = " ".join(str(message).split())
    from translearn.log import log  # here: errors.py is imported by everything, log by few

    log.error(line)
    raise SystemExit(code)


class OneLineParser(argparse.ArgumentParser):
    """argparse for translearn's commands: a bad command line is one error line with the usage, no dump."""

    def __init__(self, *args: Any, usage_hint: str, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.usage_hint = usage_hint

    def error(self, message: str) -> NoReturn:
        exit_with(f"{message} (usage: {self.usage_hint})")
