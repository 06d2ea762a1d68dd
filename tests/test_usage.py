"""Every subcommand says a usage error in one line and exits 64 (sysexits EX_USAGE), never argparse's 2."""

from __future__ import annotations

import pytest

from relion_qsub.cli import SUBCOMMANDS, Args, parse_qsub_args, qsub_main
from relion_qsub.errors import EX_USAGE


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_unknown_option_is_exit_64_in_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert qsub_main([name, "--no-such-option"]) == EX_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"relion-qsub {name}: error: ") and "--help" in err[0], err


@pytest.mark.parametrize(
    ("argv", "script", "sbatch"),
    [
        (["job.sh", "--partition=quick", "-v"], "job.sh", ("--partition=quick", "-v")),  # after SCRIPT: sbatch's
        (["-v", "--site", "testbed", "job.sh", "--site=x", "-q"], "job.sh", ("--site=x", "-q")),
        (["--", "-odd.sh", "--time=1:00"], "-odd.sh", ("--time=1:00",)),
        (["job.sh", "--", "--time=1:00"], "job.sh", ("--", "--time=1:00")),  # a "--" after SCRIPT is sbatch's too
        (["job.sh", "word", "--x"], "job.sh", ("word", "--x")),
    ],
)
def test_words_after_script_are_sbatch_options(argv: list[str], script: str, sbatch: tuple[str, ...]) -> None:
    args = parse_qsub_args(argv)
    assert isinstance(args, Args)
    assert (args.command, args.script, args.sbatch_args) == ("submit", script, sbatch)


def test_our_options_before_script() -> None:
    args = parse_qsub_args(["check", "--diff", "-qv", "--site=testbed", "job.sh", "--diff"])
    assert args == Args("check", "job.sh", ("--diff",), "testbed", diff=True, quiet=True, verbose=True)


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--bogus", "job.sh"], "unknown option '--bogus' before SCRIPT (sbatch options go after SCRIPT)"),
        (["--diff", "job.sh"], "unknown option '--diff' before SCRIPT"),  # --diff is check's
        (["--sit=testbed", "job.sh"], "unknown option '--sit=testbed'"),  # no abbreviations
        (["check", "-q"], "no SCRIPT given"),
        (["--site"], "argument --site: expected one argument"),
    ],
)
def test_submit_path_usage_errors(argv: list[str], said: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert qsub_main(argv) == EX_USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("usage: relion-qsub") and said in err[-1] and err[-1].startswith("relion-qsub: error: ")
