"""Every subcommand says a usage error in one line and exits 64 (sysexits EX_USAGE), never argparse's 2."""

from __future__ import annotations

import pytest

from relion_qsub.cli import SUBCOMMANDS, qsub_main
from relion_qsub.errors import EX_USAGE


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_unknown_option_is_exit_64_in_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert qsub_main([name, "--no-such-option"]) == EX_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"relion-qsub {name}: error: ") and "--help" in err[0], err
