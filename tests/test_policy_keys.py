"""Issue 11 item 4: every rule change is keyed by its own policy key and switched off per key.

For each key in ``checks.registry.DEFAULT_POLICY`` a script that makes that key's rule fire (and, where the defect
was, a rule of another key too). With only that key "off", its findings vanish and every other key's findings stay
exactly as they were; with only that key "error", each of its findings is an error and the script is refused.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.checks.core import FUNCTIONS, Change, Context
from relion_qsub.checks.engine import normalise, parse_cli_options
from relion_qsub.checks.registry import DEFAULT_POLICY, RULES, Kind, policy
from relion_qsub.errors import ProfileError
from relion_qsub.relion.gui import Boxes
from relion_qsub.script import parse

BIOWULF = profile.load("biowulf")
H = "#!/bin/bash\n"
GPU = "#SBATCH -p gpu --gres=lscratch:400,gpu:p100:4 -c 2\n"
REFINE = '`which relion_refine_mpi` --o Class2D/job001/run --i p.star --gpu "" --pipeline_control Class2D/job001/\n'

# key -> a script on which that key's rule fires. Several hold a second key's finding (the defects of issue 11:
# scratch_inject "off" silenced scratch_job_id, gpu_partition "off" silenced unknown_partition).
TRIGGERS: dict[str, str] = {
    "empty_directive": H + "#SBATCH --ntasks=4\n#SBATCH --time=\n#SBATCH \nhostname\n",
    "unfilled_placeholder": H + "#SBATCH --time=XXXextra1XXX\nhostname\n",
    "body_placeholder": H + "#SBATCH -n 1\nrelion_refine XXXextra7XXX\n",
    "launcher_options": H
    + "#SBATCH -n 4\n${RELION_STD_LAUNCHER} --mem-per-cpu= `which relion_run_ctffind_mpi` --i x\n",
    "typo": H + "#SBATCH --nodes=1 --exlusive\nhostname\n",
    "memory_conflict": H + "#SBATCH --mem-per-cpu=4g\n#SBATCH --mem=100g\nhostname\n",
    "duplicate_gres": H + "#SBATCH --gres=lscratch:200\n#SBATCH --gres=gpu:p100:4 -p gpu\nhostname\n",
    "foreign_scheduler": "#!/bin/tcsh\n#$ -pe openmpi 4\n#$ -cwd\n\nmpiexec -n 4  relion_refine_mpi --o x\n",
    "foreign_directive": H + "#SBATCH -n 4\n#$BATCH -e run.err\n#PBS -l walltime=1:00:00\nhostname\n",
    "repeated_option": H + "#SBATCH -p gpu\n#SBATCH -C gpup100\n#SBATCH -C x2695\nhostname\n",
    "partly_empty": H + "#SBATCH -n 2 --mem=GB\n#SBATCH --gres=gpu: -p gpu\nhostname\n",
    "scratch_inject": H + GPU + "${RELION_STD_LAUNCHER} " + REFINE + "relion_refine --o y --scratch_dir /lscratch/x\n",
    # (One command only: a second one without --scratch_dir would get one from scratch_inject only once this key
    # has added the gres, so its finding rightly depends on this key.)
    "scratch_gres": H + "#SBATCH -p norm\nrelion_refine --o x --scratch_dir /lscratch/$SLURM_JOB_ID\n",
    "scratch_job_id": H + GPU + "relion_refine --o y --scratch_dir /lscratch/x\n${RELION_STD_LAUNCHER} " + REFINE,
    "scratch_missing": H
    + "#SBATCH -p norm\nrelion_refine --o x\nrelion_refine --o y --scratch_dir /tmp/s --preread_images\n",
    "scratch_preread": H
    + GPU
    + "relion_refine --o y --scratch_dir /lscratch/x --preread_images\nrelion_refine --o z\n",
    "ntasks_mismatch": H + "#SBATCH --ntasks=16 --nodes=4 --ntasks-per-node=5\nhostname\n",
    "tasks_per_gpu": H + "#SBATCH -p gpu --gres=gpu:p100:4 -N 2 --ntasks-per-node=8 -n 16\nhostname\n",
    "threads_per_gpu": H + "#SBATCH -p gpu --gres=gpu:k80:4 -n 8 --cpus-per-task=2\nhostname\n",
    "plus_one_launcher": H + "#SBATCH -p gpu --gres=gpu:p100:4 -N 2 --ntasks-per-node=5 -n 10 -c 2\n"
    "srun relion_refine_mpi --o x --gpu\n",
    "gpu_partition": H + "#SBATCH -p multinode,nosuch --gres=gpu:p100:4\nhostname\n",
    "unknown_partition": H + "#SBATCH -p nosuch,multinode --gres=gpu:p100:4\nhostname\n",
    "gpu_without_gres": H + "#SBATCH -p norm\n${RELION_STD_LAUNCHER} " + REFINE,
    "ignored_directive": H + "hostname\n#SBATCH --ntasks=4\n",
    "threads_cpus": H + "#SBATCH -p norm -n 8\nsrun `which relion_refine_mpi` --o x --j 4\n",
    "mpi_tasks": H + "#SBATCH -p norm --ntasks=1 -c 4\nsrun `which relion_refine_mpi` --o x --j 4\n",
    "missing_chdir": H + "#SBATCH -n 1 --chdir=CREATE_PWD\nhostname\n",
}

KEYS = sorted(DEFAULT_POLICY)
KEY_OF = {r.name: r.key for r in RULES}


def findings(key: str, action: str | None = None) -> tuple[object, tuple[Change, ...]]:
    policy = dict(BIOWULF.policy)
    if action is not None:
        policy[key] = action
    ctx = Context(dataclasses.replace(BIOWULF, policy=policy), parse_cli_options([]), Boxes(None, {}))
    result = normalise(parse(TRIGGERS[key]), ctx)
    return result, result.changes


def by_key(changes: tuple[Change, ...]) -> dict[str, Counter[tuple[str, str]]]:
    out: dict[str, Counter[tuple[str, str]]] = {}
    for c in changes:
        out.setdefault(KEY_OF.get(c.rule, c.rule), Counter())[(c.action, c.message)] += 1
    return out


def test_every_key_has_a_trigger_and_one_rule() -> None:
    assert sorted(TRIGGERS) == KEYS, "add a script to TRIGGERS for each new policy key"
    checks = [r.key for r in RULES if r.kind is Kind.NORMALISE]
    assert sorted(checks) == KEYS, "each policy key is declared once"
    assert set(FUNCTIONS) == {r.key for r in RULES}, "each declared key is implemented by exactly one function"
    assert all(r.name == r.key.replace("_", "-") for r in RULES), "a rule is named after its key"


@pytest.mark.parametrize("key", KEYS)
def test_the_trigger_fires_its_key(key: str) -> None:
    if key not in TRIGGERS:
        pytest.fail(f"no script in TRIGGERS for policy key {key}")
    _, changes = findings(key)
    assert key in by_key(changes), changes


@pytest.mark.parametrize("key", KEYS)
def test_off_turns_off_only_this_key(key: str) -> None:
    if key not in TRIGGERS:
        pytest.fail(f"no script in TRIGGERS for policy key {key}")
    _, before = findings(key)
    _, after = findings(key, "off")
    expected = {k: v for k, v in by_key(before).items() if k != key}
    assert by_key(after) == expected


@pytest.mark.parametrize("key", KEYS)
def test_error_means_error(key: str) -> None:
    if key not in TRIGGERS:
        pytest.fail(f"no script in TRIGGERS for policy key {key}")
    result, changes = findings(key, "error")
    mine = [c for c in changes if KEY_OF.get(c.rule, c.rule) == key]
    assert mine and all(c.action == "error" for c in mine), mine
    assert not result.ok  # type: ignore[attr-defined]


@pytest.mark.parametrize("key", KEYS)
def test_error_never_repairs(key: str) -> None:
    """A refused script is shown as written: the refusing key's repair is not applied."""
    if key not in TRIGGERS:
        pytest.fail(f"no script in TRIGGERS for policy key {key}")
    off, _ = findings(key, "off")
    refused, _ = findings(key, "error")
    assert refused.script.render() == off.script.render()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"threads_per_gpu": "eror"}, "policy.threads_per_gpu: expected one of error, warn, fix, off, got 'eror'"),
        ({"nosuch": "warn"}, "policy.nosuch: unknown key; known: "),
        ({"scratch_gress": "warn"}, "policy.scratch_gress: unknown key; did you mean policy.scratch_gres?"),
    ],
)
def test_a_bad_policy_names_the_file_the_key_and_the_nearest_key(raw: dict[str, str], message: str) -> None:
    with pytest.raises(ProfileError) as info:
        policy(raw, "/x/site.toml")
    assert str(info.value).startswith("/x/site.toml: " + message) and "\n" not in str(info.value)


def test_a_bad_policy_in_a_profile_refuses_the_check(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[policy]\ntypo_distance = 1\nthreads_per_gpu = 'eror'\n")
    with pytest.raises(ProfileError, match=r"bad\.toml: policy\.threads_per_gpu: expected one of"):
        Context(profile.load(str(path), {"XDG_CACHE_HOME": str(tmp_path / "cache")}))


def test_a_function_attaches_only_to_a_declared_key_and_only_once() -> None:
    from relion_qsub.checks.core import implements

    with pytest.raises(ValueError, match="not declared"):
        implements("no_such_check")
    with pytest.raises(ValueError, match="implemented twice"):
        implements("typo")
