"""Man pages and --version (issue 22): generated from each program's own --help, so they cannot drift."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from relion_qsub import __version__, cli
from relion_qsub.sitetools import manpages, module

ROOT = Path(__file__).resolve().parent.parent


def test_every_subcommand_has_a_page() -> None:
    assert set(manpages.SUBCOMMANDS) == set(cli.SUBCOMMANDS)


def test_pages_are_the_help_and_man_renders_them(tmp_path: Path) -> None:
    written = [p for p in module.write_manpages(tmp_path, sys.executable, ROOT) if p.suffix == ".1"]
    names = {p.name for p in written}
    assert names == {"relion-qsub.1", "relion-launch.1", *(f"relion-qsub-{s}.1" for s in manpages.SUBCOMMANDS)}
    for path in written:
        shown = subprocess.run(
            ["man", "-l", str(path)], capture_output=True, text=True, env={"MANWIDTH": "120", "PATH": "/usr/bin:/bin"}
        )
        assert shown.returncode == 0 and "NAME" in shown.stdout, (path, shown.stderr)
    qsub = subprocess.run(["man", "-l", str(tmp_path / "man1" / "relion-qsub.1")], capture_output=True, text=True)
    help_text = cli.help_text()
    # The help's option lines are in the page, in its OPTIONS section (man joins nothing inside .nf).
    assert "OPTIONS" in qsub.stdout and "--diff           (check) also print a unified diff" in help_text
    assert "(check) also print a unified diff of the changes on stderr" in qsub.stdout
    site_page = (tmp_path / "man1" / "relion-qsub-site.1").read_text()
    assert site_page.startswith(".TH RELION-QSUB-SITE 1") and "validate" in site_page


def test_roff_escapes_what_roff_would_eat() -> None:
    text = manpages.page("x", "usage: x [-h]\n\nDoes x. More.\n\noptions:\n.dot \\\\back -dash\n")
    assert "\\&.dot \\e\\eback \\-dash" in text and ".SH OPTIONS" in text and "x \\- Does x\n" in text


def test_version_on_every_entry_point() -> None:
    for program in ("relion-qsub", "relion-launch"):
        done = subprocess.run([str(ROOT / "bin" / program), "--version"], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (0, f"{program} {__version__}\n"), done.stderr


def test_bash_completion_offers_subcommands_options_and_job_types(tmp_path: Path) -> None:
    module.write_manpages(tmp_path / "man", sys.executable, ROOT)
    script = tmp_path / "bash-completion" / "completions" / "relion-qsub"
    assert (tmp_path / "bash-completion" / "completions" / "relion-launch").resolve() == script.resolve()

    def offered(*words: str, function: str = "_relion_qsub") -> list[str]:
        probe = (
            f"source {script}; COMP_WORDS=({' '.join(words)}); COMP_CWORD={len(words) - 1}; {function}; "
            'printf "%s\\n" "${COMPREPLY[@]}"'
        )
        done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30, check=True)
        return done.stdout.split()

    assert offered("relion-qsub", "recommend", "Cla") == ["Class2D", "Class3D"]
    assert offered("relion-qsub", "site", "va") == ["validate"]
    assert offered("relion-qsub", "--vers") == ["--version"]
    assert offered("relion-qsub", "--p") == []  # prose in the help ("--partition=quick") is not an option
    assert offered("relion-launch", "--dry", function="_relion_launch") == ["--dry-run"]
