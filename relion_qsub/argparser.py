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
