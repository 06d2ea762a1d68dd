"""Mistakes other sites' templates really contain (issue 21 item 5), on scripts the real relion_pipeliner filled.

Each :class:`Mistake` is a template of ``tests/corpus/mistakes/`` (origins: its MANIFEST.md) run through Debian's
RELION 3.1.3 ``relion_pipeliner`` (``tests/test_relionfill.run_relion``; 3.1.3 fills template lines exactly as 4.0
and 5.0 do), then judged by ``relion-qsub check`` (``submit.prepare``) with the testbed profile. The golden file of
each case (``tests/golden/mistakes/<name>.slurm``) holds the report, the verdict and the normalised script; the
case also names the one finding it must give, and its fix: the template (or the box) changed as the message says,
filled again by RELION, must pass ``check`` without that finding. The real-cluster tests hand RELION's own script
and the fixed one to ``sbatch --test-only``: sbatch's own verdict on the mistake, and that the fix works.

Re-record the golden files (then review ``git diff tests/golden/mistakes``):
    RELION_QSUB_RERECORD=1 .venv/bin/pytest tests/test_template_mistakes.py -m 'not slurm'
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.errors import ProfileError
from relion_qsub.prepare import prepare
from tests import goldens
from tests.test_relionfill import Case as RelionCase
from tests.test_relionfill import pipeliner, run_relion

__all__ = ["pipeliner"]  # the fixture, used by name

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "corpus" / "mistakes"
GOLDEN = HERE / "golden" / "mistakes"
PARTICLES = {"particles.star": ""}
# The profile section a site with EasyBuild's patched templates would write (docs/profile-reference.md).
PLACEHOLDERS = """
[placeholders.account]
value = "relion"

[placeholders.qos]
source = "env"
value = "SITE_QOS"

[placeholders.timelimit]
source = "box"
value = "qsub_extra1"

[placeholders.jobtype]
source = "jobtype"

[placeholders.extrasbatch]
source = "env"
value = "SITE_EXTRA_SBATCH"
"""
ENV = {"SITE_QOS": "normal", "SITE_EXTRA_SBATCH": "--mail-type=NONE"}


@dataclasses.dataclass(frozen=True)
class Mistake:
    name: str
    template: str  # a file of tests/corpus/mistakes/
    purpose: str
    rule: str  # the rule of the one finding
    message: str  # ... and words of its message
    ok: bool  # relion-qsub's verdict on RELION's script
    sbatch: str  # words of what sbatch --test-only says of RELION's script as it is
    fix_template: Callable[[str], str] = lambda text: text  # the fix the message asks for
    fix_extras: dict[int, str] | None = None
    label: str = ""  # the site's label of box 1 (RELION_QSUB_EXTRA1); "": the template has no box
    extra: str = ""  # the value typed into box 1
    queue: str = "multinode"
    mpi: int = 3
    gpu: bool = False
    placeholders: bool = False  # the profile declares the patched RELION's placeholders

    def relion_case(self, fixed: bool = False) -> RelionCase:
        text = (TEMPLATES / self.template).read_text()
        extras = {1: self.extra} if self.label else {}
        if fixed:
            text = self.fix_template(text)
            extras = self.fix_extras if self.fix_extras is not None else extras
        options = {"fn_img": "particles.star", "nr_mpi": str(self.mpi), "nr_threads": "1"}
        if self.gpu:
            options["use_gpu"] = "Yes"
        return RelionCase(
            name=self.name,
            template=text,
            job="Class2D",
            options=options,
            mpi=self.mpi,
            threads=1,
            queue=self.queue,
            labels={1: self.label} if self.label else {},
            extras=extras,
            files=PARTICLES,
        )


def _move_set_e(text: str) -> str:
    lines = text.split("\n")
    lines.remove("set -e")
    last = max(i for i, line in enumerate(lines) if line.startswith("#SBATCH"))
    return "\n".join([*lines[: last + 1], "set -e", *lines[last + 1 :]])


MISTAKES = (
    Mistake(
        "set_e_first",
        "set_e_first.sh",
        "`set -e` above the #SBATCH block: sbatch ignores all 7 directives",
        "ignored-directive",
        "`set -e` comes before the #SBATCH lines, so sbatch would ignore all 7 of them: moved it below the last "
        "#SBATCH line (line 9)",
        True,
        "in partition norm",  # the default partition: --partition=multinode was ignored
        fix_template=_move_set_e,
        label="Walltime",
        extra="1:00:00",
    ),
    Mistake(
        "feature_or",
        "feature_box.sh",
        "an OR of features in the constraint box: sbatch accepts it",
        "",
        "",
        True,
        "to start at",
        label="Node feature",
        extra="gpup100|x2695",
        queue="gpu",
    ),
    Mistake(
        "feature_and_elsewhere",
        "feature_box.sh",
        "an AND of features that no node of the partition has together",
        "unknown-feature",
        "asks for nodes with x2695, which partition 'gpu' nodes do not have",
        False,
        "Requested node configuration is not available",
        fix_extras={1: "gpup100"},
        label="Node feature",
        extra="gpup100&x2695",
        queue="gpu",
    ),
    Mistake(
        "feature_unknown",
        "feature_box.sh",
        "an OR naming a feature no node has",
        "unknown-feature",
        "names feature 'p100', which no node has",
        False,
        "Invalid feature specification",
        fix_extras={1: "gpup100|x2695"},
        label="Node feature",
        extra="p100|x2695",
        queue="gpu",
    ),
    Mistake(
        "chdir_placeholder",
        "chdir_placeholder.sh",
        "--chdir=CREATE_PWD, another tool's placeholder: sbatch accepts it, the job fails at launch",
        "missing-chdir",
        "--chdir=CREATE_PWD is no directory",
        False,
        "to start at",
        fix_template=lambda text: text.replace("#SBATCH --chdir=CREATE_PWD\n", ""),
    ),
    Mistake(
        "gres_comma_space",
        "gres_box.sh",
        "a space after the comma in the Gres box",
        "typo",
        "remove the space after the comma in the 'Gres' box",
        True,
        "Invalid directive found in batch script: gpu:p100:1",
        fix_extras={1: "lscratch:5,gpu:p100:1"},
        label="Gres",
        extra="lscratch:5, gpu:p100:1",
        queue="gpu",
        gpu=True,
    ),
    Mistake(
        "mem_without_unit",
        "mem_box.sh",
        "--mem=100 (MB) for 3 ranks of relion_refine_mpi",
        "memory-unit-mpi",
        "did you mean 100G?",
        False,
        "to start at",
        fix_extras={1: "100G"},
        label="Memory",
        extra="100",
    ),
    Mistake(
        "easybuild_undeclared",
        "easybuild_patched.sh",
        "a template for EasyBuild's patched RELION on stock RELION, no [placeholders]: each dropped with a warning",
        "unfilled-placeholder",
        "declare it in the site profile's [placeholders.account]",
        True,
        "Invalid --time specification",  # XXXtimelimitXXX as RELION leaves it
        label="Time limit",
        extra="0:30:00",
    ),
    Mistake(
        "easybuild_declared",
        "easybuild_patched.sh",
        "the same with the profile's [placeholders]: constant, env, job.star's job type and box",
        "placeholders",
        "filled XXXtimelimitXXX with '0:30:00' from job.star's qsub_extra1 (placeholders.timelimit)",
        True,
        "Invalid --time specification",  # XXXtimelimitXXX as RELION leaves it
        label="Time limit",
        extra="0:30:00",
        placeholders=True,
    ),
)
IDS = [m.name for m in MISTAKES]


def site(tmp: Path, mistake: Mistake) -> profile.Site:
    text = (Path(profile.__file__).parent.parent / "profiles" / "testbed.toml").read_text()
    path = tmp / "site.toml"
    path.write_text(text + (PLACEHOLDERS if mistake.placeholders else ""))
    return profile.load(str(path), {"RELION_QSUB_NO_CACHE": "1"})


def relion_filled(pipeliner: str, tmp: Path, mistake: Mistake, fixed: bool = False) -> tuple[Path, Path]:
    """(project dir, RELION's run_submit.script) of the job RELION ran for the case (or for its fix)."""
    tmp.mkdir(parents=True, exist_ok=True)
    project = tmp / ("fixed" if fixed else "as_written")
    run = run_relion(pipeliner, project, mistake.relion_case(fixed))
    return project, project / run.jobdir / "run_submit.script"


def judge(project: Path, script: Path, mistake: Mistake, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """relion-qsub check, run as RELION runs the submit command: from the project dir, with its box labels."""
    monkeypatch.chdir(project)
    for name in [k for k in os.environ if k.startswith("RELION_QSUB_")]:
        monkeypatch.delenv(name)
    if mistake.label:
        monkeypatch.setenv("RELION_QSUB_EXTRA1", mistake.label)
    monkeypatch.setenv("RELION_QSUB_TEMPLATE", str(project / "template.sh"))
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return prepare(script.relative_to(project), [], site(project.parent, mistake)).result


def golden_text(mistake: Mistake, result, project: Path) -> str:  # type: ignore[no-untyped-def]
    # The project dir is a new temporary one each run: a message naming a path in it names "<project>".
    report = "".join(f"# {str(change).replace(str(project), '<project>')}\n" for change in result.changes)
    verdict = "# would submit\n" if result.ok else f"# would NOT submit: {len(result.errors)} error(s)\n"
    head = f"# {mistake.name}: {mistake.purpose}\n# template tests/corpus/mistakes/{mistake.template}\n"
    return head + report + verdict + "# ---- normalised script ----\n" + result.script.render()


@pytest.mark.relion
@pytest.mark.parametrize("mistake", MISTAKES, ids=IDS)
def test_verdict_message_and_golden(
    pipeliner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mistake: Mistake
) -> None:
    project, script = relion_filled(pipeliner, tmp_path, mistake)
    result = judge(project, script, mistake, monkeypatch)
    assert result.ok == mistake.ok, [str(c) for c in result.changes]
    if mistake.rule:
        found = [c for c in result.changes if c.rule == mistake.rule and mistake.message in c.message]
        assert found, [str(c) for c in result.changes]
    actual = golden_text(mistake, result, project)
    rerecord = f"tests/test_template_mistakes.py -m 'not slurm' -k {mistake.name}"
    goldens.check(GOLDEN / f"{mistake.name}.slurm", actual, mistake.name, rerecord)


FIXABLE = [m for m in MISTAKES if m.rule and m.rule != "placeholders"]


@pytest.mark.relion
@pytest.mark.parametrize("mistake", FIXABLE, ids=[m.name for m in FIXABLE])
def test_the_fix_the_message_asks_for_works(
    pipeliner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mistake: Mistake
) -> None:
    if mistake.rule == "unfilled-placeholder":
        mistake = dataclasses.replace(mistake, placeholders=True)  # the fix: declare them in the profile
    project, script = relion_filled(pipeliner, tmp_path, mistake, fixed=True)
    result = judge(project, script, mistake, monkeypatch)
    assert result.ok, [str(c) for c in result.errors]
    assert [c for c in result.changes if c.rule == mistake.rule] == []


@pytest.mark.relion
def test_a_declared_placeholder_without_its_variable_is_one_error_naming_the_key(
    pipeliner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (mistake,) = [m for m in MISTAKES if m.name == "easybuild_declared"]
    project, script = relion_filled(pipeliner, tmp_path, mistake)
    monkeypatch.delitem(ENV, "SITE_QOS")
    with pytest.raises(ProfileError, match=r"site.toml: placeholders.qos: environment variable SITE_QOS is not set"):
        judge(project, script, mistake, monkeypatch)


def test_placeholder_declarations_are_checked(tmp_path: Path) -> None:
    base = (Path(profile.__file__).parent.parent / "profiles" / "testbed.toml").read_text()
    bad = {
        '[placeholders.qos]\nsource = "envv"\n': "placeholders.qos.source: expected one of constant, env, jobtype, box",
        '[placeholders.qos]\nsource = "env"\nvalue = "1X"\n': "placeholders.qos.value: expected the name of an",
        '[placeholders.qos]\nsource = "box"\nvalue = "Walltime"\n': "placeholders.qos.value: expected a box as job",
        "[placeholders.queue]\n": "placeholders.queue: expected a placeholder RELION does not fill itself",
        "[placeholders.XXXqosXXX]\n": "placeholders.XXXqosXXX: expected a placeholder's name between XXX and XXX",
    }
    for n, (section, message) in enumerate(bad.items()):
        path = tmp_path / f"p{n}.toml"
        path.write_text(base + "\n" + section)
        with pytest.raises(ProfileError, match=message.replace("(", r"\(").replace(".", r"\.")):
            profile.load(str(path), {"RELION_QSUB_NO_CACHE": "1"})


def _test_only(project: Path, script: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sbatch", "--test-only", str(script.relative_to(project))],
        cwd=project, capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.slurm
@pytest.mark.relion
@pytest.mark.parametrize("mistake", MISTAKES, ids=IDS)
def test_sbatch_on_relions_script_and_on_the_fix(
    pipeliner: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mistake: Mistake
) -> None:
    project, script = relion_filled(pipeliner, tmp_path, mistake)
    said = _test_only(project, script)
    assert mistake.sbatch in said.stderr, said.stderr
    # The fix the message asks for (declaring the placeholders, for an undeclared one); a case without a mistake is
    # its own fix.
    fixed = dataclasses.replace(mistake, placeholders=mistake.placeholders or mistake.rule == "unfilled-placeholder")
    project, script = relion_filled(pipeliner, tmp_path / "fix", fixed, fixed=True)
    result = judge(project, script, fixed, monkeypatch)
    normalised = script.with_suffix(".slurm")
    normalised.write_text(result.script.render())
    done = _test_only(project, normalised)
    assert done.returncode == 0 and "to start at" in done.stderr, done.stderr


# What ends sbatch's directive block (src/sbatch/opt.c, _opt_batch_script): the first line that is neither blank nor
# a '#' line. Script text -> whether sbatch reads the #SBATCH line (it names a partition that does not exist).
BLOCK_ENDS = {
    "#!/bin/bash\n\n# resources\n#SBATCH -p nosuch\nhostname\n": True,
    "#!/bin/bash\n  \n## comment\n#SBATCH -p nosuch\nhostname\n": True,
    "#!/bin/bash\nset -e\n#SBATCH -p nosuch\nhostname\n": False,
    "#!/bin/bash\n#SBATCH -n 1\nmodule load relion\n#SBATCH -p nosuch\nhostname\n": False,
}


@pytest.mark.parametrize(("text", "read"), BLOCK_ENDS.items())
def test_the_script_model_ends_the_block_where_sbatch_does(text: str, read: bool) -> None:
    from relion_qsub.script import parse

    assert parse(text).has("partition") == read


@pytest.mark.slurm
@pytest.mark.parametrize(("text", "read"), BLOCK_ENDS.items())
def test_sbatch_ends_the_block_there(tmp_path: Path, text: str, read: bool) -> None:
    script = tmp_path / "job.sh"
    script.write_text(text)
    done = _test_only(tmp_path, script)
    assert ("invalid partition specified: nosuch" in done.stderr) == read, done.stderr
