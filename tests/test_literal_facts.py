"""One fact, one home: a Slurm (or RELION) fact written as a literal outside its home package fails here.

Each home is a package of relion_qsub; its table lists the literals only it may write: names spelt exactly
(``exact``: a string constant equal to one), phrases (``within``: a string constant containing one) and shapes
(``shapes``: a regular expression found in a string constant). Docstrings are prose and are not scanned; f-string
parts are. Code elsewhere uses the home's names (``states.TIMEOUT``, ``client.jobs_with_token``) instead.

The lists are written out here rather than read from the home, so that a fact copied out of its home is caught even
when the home itself changes.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "relion_qsub"


@dataclass(frozen=True)
class Facts:
    exact: frozenset[str] = frozenset()
    within: tuple[str, ...] = ()
    shapes: tuple[re.Pattern[str], ...] = field(default=())


SLURM = Facts(
    exact=frozenset(
        {
            # JobState names (src/common/slurm_protocol_defs.c, job_state_string; 22.05)
            "BOOT_FAIL",
            "CANCELLED",
            "COMPLETED",
            "COMPLETING",
            "CONFIGURING",
            "DEADLINE",
            "FAILED",
            "NODE_FAIL",
            "OUT_OF_MEMORY",
            "PENDING",
            "PREEMPTED",
            "REQUEUED",
            "RESIZING",
            "REVOKED",
            "RUNNING",
            "SIGNALING",
            "STAGE_OUT",
            "STOPPED",
            "SUSPENDED",
            "TIMEOUT",
            # pending and end reasons (slurm/slurm.h, job_state_reason)
            "AccountNotAllowed",
            "AssocGrpCpuLimit",
            "AssocGrpGRES",
            "AssocGrpMemLimit",
            "AssocGrpNodeLimit",
            "AssocMaxCpuPerJobLimit",
            "AssocMaxGRESPerJob",
            "AssocMaxMemPerJob",
            "AssocMaxNodePerJobLimit",
            "AssocMaxWallDurationPerJobLimit",
            "BadConstraints",
            "BeginTime",
            "DependencyNeverSatisfied",
            "InvalidAccount",
            "InvalidQOS",
            "JobHeldAdmin",
            "JobHeldUser",
            "JobLaunchFailure",
            "NonZeroExitCode",
            "PartitionConfig",
            "PartitionNodeLimit",
            "PartitionTimeLimit",
            "QOSGrpCpuLimit",
            "QOSGrpNodeLimit",
            "QOSMaxCpuPerJobLimit",
            "QOSMaxGRESPerJob",
            "QOSMaxMemoryPerJob",
            "QOSMaxNodePerJobLimit",
            "QOSMaxWallDurationPerJobLimit",
            "ReqNodeNotAvail",
        }
    ),
    within=(
        "Submitted batch job",  # sbatch's answer
        "Invalid job id specified",  # scontrol's answer for a forgotten job
        "CANCELLED by",  # sacct's State of a cancel
        "JobState=",  # scontrol show job's keys
        "--parsable2",  # sacct's output format
        "--format=%",  # squeue's output format
    ),
    shapes=(re.compile(r"%[a-zA-Z]\|%[a-zA-Z]"),),  # an squeue format: %i|%T|%r|%k
)

_RELION_FILES = (
    # the job-dir contract (pipeline_jobs.cpp, pipeliner.cpp): the exit files and the abort request the programs
    # read and write through --pipeline_control, the output files of the queue template, the job's settings
    "RELION_JOB_EXIT_SUCCESS",
    "RELION_JOB_EXIT_FAILURE",
    "RELION_JOB_EXIT_ABORTED",
    "RELION_JOB_ABORT_NOW",
    "run.out",
    "run.err",
    "job.star",
    "run_submit.script",  # what RelionJob::saveJobSubmissionScript writes
    "relion-qsub.jsonl",  # relion-qsub's own record beside them
)
RELION = Facts(
    exact=frozenset(_RELION_FILES),
    within=tuple(
        # RELION's placeholders (RelionJob::saveJobSubmissionScript)
        f"XXX{name}XXX"
        for name in (
            "mpinodes",
            "threads",
            "cores",
            "dedicated",
            "nodes",
            "name",
            "errfile",
            "outfile",
            "queue",
            "command",
        )
    ),
    shapes=(
        re.compile(r"XXXextra\d+XXX"),  # an extra box's placeholder
        re.compile(r"XXX[\\\[(]"),  # a pattern for placeholders: XXX[a-z]\w*?XXX, XXX\w+XXX
        re.compile("/(?:" + "|".join(re.escape(name) for name in _RELION_FILES) + ")$"),  # a path to one of the files
    ),
)

# home (a package of relion_qsub) -> the literals only it may write
HOMES: dict[str, Facts] = {"relion": RELION, "slurm": SLURM}


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are statements of their own: docstrings and other prose."""
    return {
        id(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
    }


def offences(source: str, facts: Facts) -> list[tuple[int, str]]:
    """(line, literal) for each string constant of ``source`` that writes one of ``facts``."""
    tree = ast.parse(source)
    prose = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str) or id(node) in prose:
            continue
        text = node.value
        if (
            text in facts.exact
            or any(phrase in text for phrase in facts.within)
            or any(shape.search(text) for shape in facts.shapes)
        ):
            found.append((node.lineno, text))
    return sorted(found)


def outside(home: str) -> list[Path]:
    root = PACKAGE / home
    return sorted(p for p in PACKAGE.rglob("*.py") if root not in p.parents)


@pytest.mark.parametrize("home", sorted(HOMES))
def test_facts_are_written_only_in_their_home(home: str) -> None:
    found = [
        f"{path.relative_to(PACKAGE.parent)}:{line}: {text!r}"
        for path in outside(home)
        for line, text in offences(path.read_text(encoding="utf-8"), HOMES[home])
    ]
    assert not found, f"literals that belong in relion_qsub/{home}/ (use its names instead):\n" + "\n".join(found)


@pytest.mark.parametrize("home", sorted(HOMES))
def test_the_home_exists_and_holds_its_facts(home: str) -> None:
    # The scan above would pass if the home's own path were wrong (everything outside it) or it held none of them.
    inside = list((PACKAGE / home).rglob("*.py"))
    assert inside and any(offences(p.read_text(encoding="utf-8"), HOMES[home]) for p in inside)


def test_the_relion_scan_sees_file_names_placeholders_and_placeholder_patterns() -> None:
    source = '''
"""RELION writes run.out and fills XXXmpinodesXXX: prose."""
OUT = "run.out"
LOG = "Class2D/job001/relion-qsub.jsonl"
LINE = f"#SBATCH --ntasks=XXXmpinodesXXX --mem={mem}XXXextra2XXX"
PATTERN = r"XXX\\w+XXX"
SAID = "see run.out in the job dir"
'''
    assert [text for _, text in offences(source, RELION)] == [
        "run.out",
        "Class2D/job001/relion-qsub.jsonl",
        "#SBATCH --ntasks=XXXmpinodesXXX --mem=",
        "XXXextra2XXX",
        "XXX\\w+XXX",
    ]


def test_the_scan_sees_names_phrases_and_shapes_but_not_prose() -> None:
    source = '''
"""A docstring may say TIMEOUT and "Submitted batch job 5"."""
def f(state, job):
    """So may this one: PENDING."""
    if state == "TIMEOUT":
        return f"Submitted batch job {job}"
    return ["squeue", "--format=%i|%T"]
'''
    assert [text for _, text in offences(source, SLURM)] == ["TIMEOUT", "Submitted batch job ", "--format=%i|%T"]
