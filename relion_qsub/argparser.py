"""The one argparse parser class of relion-qsub's commands (submit, check and every subcommand).

argparse exits 2 on a usage error; relion-qsub's commands say it in one line and exit 64 (sysexits EX_USAGE), like
every other relion-qsub error.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .errors import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


class FixedWidth(argparse.HelpFormatter):
    """For a parser whose help is its own text (the submit path's `help_text`): argparse formats every argument as it
    is added, and its default formatter asks the terminal for its width first (importing shutil, with bz2 and lzma:
    ~2 ms of every RELION "Run" click, for help that is never printed)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=120)
