"""The argument parser of the subcommands off the submit path (doctor, report, site, templates, module, recommend).

argparse exits 2 on a usage error; relion-qsub's commands say it in one line and exit 64 (sysexits EX_USAGE), like
every other relion-qsub error. The submit path parses its own argv (argparse's import costs more than the check).
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .errors import UsageError


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")
