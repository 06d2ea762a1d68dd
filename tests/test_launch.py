"""relion-launch without a cluster: option parsing, the RELION command, srun's reports, the pipeline files, and
whole runs against a small fake srun script (a real process on PATH) or pytest-subprocess where a scripted srun
is the right tool. Real srun runs are in test_launch_cluster.py."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from relion_qsub.errors import CommandError, InputError, UsageError
from relion_qsub.launch import main as launch
from relion_qsub.launch.envfile import load_env_file
from relion_qsub.launch.invocation import parse_args, relion_args
from relion_qsub.launch.pipeline import Pipeline
from relion_qsub.launch.preflight import particle_bytes, scratch_check
from relion_qsub.launch.supervise import Outcome, RankFailure, parse_cancel, parse_task_end, supervise, verdict

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = ROOT / "bin" / "relion-launch"

JOB_ENV = {
    "SLURM_JOB_ID": "4242",
    "SLURM_JOB_NODELIST": "cn[1-2]",
    "SLURM_JOB_NUM_NODES": "2",
    "SLURM_NTASKS": "10",
    "SLURM_NTASKS_PER_NODE": "5",
    "SLURM_TASKS_PER_NODE": "5(x2)",
    "SLURM_JOB_GPUS": "0,1,2,3",
    "CUDA_VISIBLE_DEVICES": "0,1,2,3",
    "SLURM_CPUS_PER_TASK": "2",
}


# ------------------------------------------------------------------------------------------------ options


def test_options_up_to_the_first_word_then_the_command_untouched() -> None:
    inv = parse_args(["--mem-per-cpu=4g", "-p", "gpu", "--mpi", "pmix", "/bin/relion_refine_mpi", "--o", "-n", "3"])
    assert inv.srun_options == ["--mem-per-cpu=4g", "-p", "gpu", "--mpi=pmix"]
    assert inv.command == ["/bin/relion_refine_mpi", "--o", "-n", "3"]
    assert inv.ntasks is None


def test_empty_and_placeholder_values_are_dropped_with_a_warning() -> None:
    inv = parse_args(["--mem-per-cpu=", "--time", "XXXextra1XXX", "--gres=", "cmd"])
    assert inv.srun_options == [] and inv.command == ["cmd"]
    assert len(inv.warnings) == 3
    assert "dropping --mem-per-cpu=" in inv.warnings[0]
    assert "XXXextra1XXX" in inv.warnings[1]


def test_own_options_and_separator() -> None:
    inv = parse_args(["-v", "--dry-run", "--env-file", "x.env", "--mode=homogeneous", "--no-gpu-bind", "-n4", "--"])
    assert inv.verbose and inv.dry_run and inv.env_file == "x.env" and inv.mode == "homogeneous"
    assert inv.ntasks == 4 and inv.command == [] and inv.srun_options == []  # --no-gpu-bind: accepted, no effect
    assert parse_args(["--ntasks=2", "--", "--weird-program"]).command == ["--weird-program"]
    assert parse_args(["-n", "3", "x"]).ntasks == 3
    assert parse_args(["--ntasks", "5", "x"]).ntasks == 5


def test_short_option_forms() -> None:
    inv = parse_args(["-I5", "-lu", "-pgpu", "-c", "2", "-Q", "cmd"])
    assert inv.srun_options == ["-I5", "-lu", "-pgpu", "-c", "2", "-Q"]
    assert inv.command == ["cmd"]


@pytest.mark.parametrize("word", ["-K0", "--kill-on-bad-exit=0", "-lK0", "-K00", "-Kl", "--kill-on-bad-exit=no"])
def test_kill_on_bad_exit_off_is_refused(word: str) -> None:
    # srun takes its last -K: after relion-launch's own -K1 it would switch the zombie defence off
    with pytest.raises(UsageError, match=r"relion-launch always runs srun -K1.*remove it") as info:
        parse_args([word, "cmd"])
    assert "\n" not in str(info.value) and repr(word) in str(info.value)


@pytest.mark.parametrize(
    ("words", "kept"),
    [(["-K"], []), (["-K1"], []), (["--kill-on-bad-exit"], []), (["--kill-on-bad-exit=1"], []), (["-lK1"], ["-l"])],
)
def test_kill_on_bad_exit_repeats_are_dropped_with_a_note(words: list[str], kept: list[str]) -> None:
    inv = parse_args([*words, "--mpi=pmix", "cmd"])
    assert inv.srun_options == [*kept, "--mpi=pmix"] and inv.command == ["cmd"]
    assert len(inv.warnings) == 1 and "already runs srun -K1" in inv.warnings[0]


def test_dry_run_argv_has_only_our_kill_on_bad_exit(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert launch.main(["--dry-run", "-K", "-lK1", *relion_cmd()]) == 0
    argv_line = next(line for line in capfd.readouterr().out.splitlines() if line.startswith("argv:"))
    assert argv_line.startswith("argv:      srun -K1 -l -n 9 ") and argv_line.count("-K") == 1


def test_n_is_capped() -> None:
    with pytest.raises(UsageError, match="-n/--ntasks 1000001 is more than relion-launch's limit of 1,000,000"):
        parse_args(["-n", "1000001", "cmd"])


def test_unexpanded_which_gives_a_clear_error() -> None:
    # `which relion_refine_mpi` found nothing: the command starts with RELION's own options
    with pytest.raises(UsageError, match=r"'--o' is not an srun option.*which relion_"):
        parse_args(["--mem-per-cpu=4g", "--o", "Class2D/job001/run", "--i", "particles.star"])
    with pytest.raises(UsageError, match="-n/--ntasks needs a whole number"):
        parse_args(["-n", "lots", "cmd"])
    with pytest.raises(UsageError, match="--partition needs a value"):
        parse_args(["--partition"])
    with pytest.raises(UsageError, match="takes no value"):
        parse_args(["--label=yes", "cmd"])


def test_relion_args() -> None:
    r = relion_args(
        ["/x/relion_refine_mpi", "--i", "p.star", "--gpu", "", "--j", "3", "--scratch_dir", "/lscratch/1",
         "--pipeline_control", "Class2D/job001/", "--keep_free_scratch", "2"]
    )  # fmt: skip
    assert r.program == "relion_refine_mpi" and r.input_star == "p.star" and r.threads == 3
    assert r.gpu == "" and r.scratch_dir == "/lscratch/1" and r.pipeline_control == "Class2D/job001/"
    assert r.keep_free_scratch_gb == 2
    assert relion_args(["p", "--gpu", "--j", "x"]).gpu == ""
    assert relion_args(["p", "--gpu", "0:1"]).gpu == "0:1"
    assert relion_args(["p"]).gpu is None and relion_args(["p"]).threads is None


def test_env_file_forms(tmp_path: Path) -> None:
    f = tmp_path / "job.env"
    f.write_text(
        "# saved with env | sort\nSLURM_JOB_ID=7\nexport A='x y'\nB=\"q\"\nEMPTY=\n"
        "BASH_FUNC_module%%=() {  eval x\n  echo y\n}\nC=a=b\n"
    )
    assert load_env_file(str(f)) == {"SLURM_JOB_ID": "7", "A": "x y", "B": "q", "EMPTY": "", "C": "a=b"}
    f.write_text("A=1\nthis is not a variable\n")
    with pytest.raises(InputError, match=r"job.env:2: expected KEY=VALUE"):
        load_env_file(str(f))
    with pytest.raises(InputError, match="cannot read --env-file"):
        load_env_file(str(tmp_path / "missing.env"))


def _save_job_env(path: Path, recipe: str) -> None:
    """JOB_ENV saved by a real bash that exports shell functions (as Lmod and Environment Modules do)."""
    functions = 'module() { eval "$(echo x)"; echo y; }; ml() { module "$@"; }; export -f module ml; '
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C", **JOB_ENV}
    with path.open("wb") as fh:
        subprocess.run(["bash", "-c", functions + recipe], env=env, stdout=fh, check=True)


@pytest.mark.parametrize("recipe", ["env | sort", "env", "env -0", "printenv -0 | sort -z", "env | sort -r"])
def test_env_file_saved_with_shell_functions(tmp_path: Path, recipe: str, capfd: pytest.CaptureFixture[str]) -> None:
    # `env | sort` moves the functions' closing braces to the end: every variable must still be read
    f = tmp_path / "job.env"
    _save_job_env(f, recipe)
    assert "BASH_FUNC_module%%" in f.read_text()
    env = load_env_file(str(f))
    assert {k: env.get(k) for k in JOB_ENV} == JOB_ENV
    assert not any(k.startswith("BASH_FUNC") for k in env) and not any(v.startswith("()") for v in env.values())
    assert launch.main(["--dry-run", "--env-file", str(f), *relion_cmd()]) == 0
    out, err = capfd.readouterr()
    assert "mode:      homogeneous+1" in out and "warning" not in err


def test_env_file_stray_line_is_an_error_naming_it(tmp_path: Path) -> None:
    f = tmp_path / "job.env"
    f.write_text("SLURM_JOB_ID=7\nBASH_FUNC_m%%=() {  echo\n}\nmulti-line value, second line\nB=2\n")
    with pytest.raises(InputError, match=r"job.env:4: expected KEY=VALUE, got 'multi-line value.*env -0") as info:
        load_env_file(str(f))
    assert "\n" not in str(info.value)
    f.write_text("SLURM_JOB_ID=7\n  indented=without functions\n")  # no functions: an indented line is a variable
    assert load_env_file(str(f)) == {"SLURM_JOB_ID": "7", "indented": "without functions"}
    f.write_bytes(b"SLURM_JOB_ID=7\0no equals sign\0")
    with pytest.raises(InputError, match="NUL-separated record 2 is not KEY=VALUE"):
        load_env_file(str(f))


def test_env_file_job_id_read_as_function_body_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "job.env"
    f.write_text("BASH_FUNC_m%%=() {  echo\n}\n  SLURM_JOB_ID=7\nSLURM_JOB_NODELIST=cn1\n")
    with pytest.raises(InputError, match=r"job.env:3: SLURM_JOB_ID is set on an indented line.*outside a Slurm job"):
        load_env_file(str(f))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PATH=/bin\nHOME=/root\n", "sets no SLURM_\\* variable: this is the plan outside a Slurm job"),
        ("SLURM_JOB_NODELIST=cn1\nSLURM_NTASKS=2\n", "has SLURM_\\* variables but no SLURM_JOB_ID"),
        ("SLURM_JOB_ID=\nSLURM_NTASKS=2\n", "has SLURM_\\* variables but no SLURM_JOB_ID"),
    ],
)
def test_env_file_that_cannot_be_a_job_says_so(
    tmp_path: Path, text: str, expected: str, capfd: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "job.env"
    f.write_text(text)
    assert launch.main(["--dry-run", "--env-file", str(f), "relion_refine_mpi"]) == 0
    out, err = capfd.readouterr()
    assert "mode:      local" in out
    assert re.search(f"relion-launch: warning: --env-file {re.escape(str(f))} {expected}.*env -0 > job.env", err)


# ------------------------------------------------------------------------------------------------ srun's reports


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"srun: error: cn2: task 6: Exited with exit code 3\n", RankFailure(6, "cn2", 3, "Exited with exit code 3")),
        (b"srun: error: cn1: tasks 0-4: Terminated\n", RankFailure(0, "cn1", 143, "Terminated")),
        (b"srun: error: cn2: tasks 5,7-8: Killed\n", RankFailure(5, "cn2", 137, "Killed")),
        (
            b"srun: error: cn[1-2]: tasks 3,9: Segmentation fault (core dumped)\n",
            RankFailure(3, "cn[1-2]", 139, "Segmentation fault (core dumped)"),
        ),
        (b"task 3: Exited with exit code 9\n", None),  # a rank's own output, not srun's report
        (b"srun: error: cn1: task 0: Something new\n", None),
        (b"srun: Job step aborted: Waiting up to 32 seconds for job step to finish.\n", None),
    ],
)
def test_parse_task_end(line: bytes, expected: RankFailure | None) -> None:
    assert parse_task_end(line) == expected


def test_parse_cancel() -> None:
    assert parse_cancel(b"slurmstepd: error: *** STEP 5.0 ON cn1 CANCELLED AT 2026-11-25T02:38:53 ***\n") == "scancel"
    line = b"slurmstepd: error: *** JOB 5 ON cn1 CANCELLED AT 2026-11-25T02:38:53 DUE TO TIME LIMIT ***\n"
    assert parse_cancel(line) == "time limit"
    assert parse_cancel(b"hello\n") is None


def test_a_step_srun_could_not_start_because_the_job_ended() -> None:
    from relion_qsub.launch.supervise import _pass_through

    outcome = Outcome(1)
    lines = [b"srun: error: Slurm job 1804 has expired\n", b"srun: Check SLURM_JOB_ID environment variable.\n"]
    with open(os.devnull, "wb") as sink:
        _pass_through(iter(lines), sink, outcome)  # type: ignore[arg-type]
    code, reason = verdict(outcome, "relion_refine", "1804")
    assert code == 1 and reason is not None
    assert reason.startswith("srun could not start the step: Slurm job 1804 was already being ended (cancelled")


def test_verdict() -> None:
    assert verdict(Outcome(0), "p") == (0, None)
    code, reason = verdict(Outcome(143, RankFailure(6, "cn2", 3, "Exited with exit code 3")), "relion_refine_mpi")
    assert code == 3 and reason is not None and "rank 6 on cn2 failed first" in reason
    code, reason = verdict(Outcome(143, RankFailure(0, "cn1", 143, "Terminated"), None, "scancel"), "p")
    assert code == 143 and reason is not None and "cancelled (scancel)" in reason
    code, reason = verdict(Outcome(137, None, signal.SIGTERM, "time limit"), "p")
    assert code == 143 and reason is not None and "SIGTERM (time limit)" in reason
    assert verdict(Outcome(1), "p")[0] == 1
    assert verdict(Outcome(-9), "p")[0] == 137


# ------------------------------------------------------------------------------------------------ pipeline files


def test_mark_failure_writes_file_and_reason(tmp_path: Path) -> None:
    jobdir = tmp_path / "Class2D" / "job001"
    jobdir.mkdir(parents=True)
    (jobdir / "run.err").write_text("earlier\n")
    p = Pipeline(f"{jobdir}/")
    assert p.mark_failure("rank 3 on cn2 failed first")
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    lines = (jobdir / "run.err").read_text().splitlines()
    assert lines[0] == "earlier" and lines[1].startswith("relion-launch: rank 3 on cn2 failed first")
    assert len(lines) == 2
    assert not p.mark_failure("again")  # once only
    assert len((jobdir / "run.err").read_text().splitlines()) == 2


@pytest.mark.parametrize("existing", ["RELION_JOB_EXIT_SUCCESS", "RELION_JOB_EXIT_ABORTED", "RELION_JOB_EXIT_FAILURE"])
def test_mark_failure_never_overwrites_relions_own_file(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("relion's")
    assert not Pipeline(str(tmp_path)).mark_failure("x")
    assert (tmp_path / existing).read_text() == "relion's"
    assert [p.name for p in tmp_path.iterdir()] == [existing]


def test_mark_failure_without_job_dir(tmp_path: Path) -> None:
    assert not Pipeline(None).mark_failure("x")
    assert not Pipeline(str(tmp_path / "nope")).mark_failure("x")


# ------------------------------------------------------------------------------------------------ preflight


def test_particle_bytes_sums_the_referenced_stacks(tmp_path: Path) -> None:
    (tmp_path / "Extract").mkdir()
    (tmp_path / "Extract" / "a.mrcs").write_bytes(b"x" * 1000)
    (tmp_path / "Extract" / "b.mrcs").write_bytes(b"x" * 500)
    star = tmp_path / "particles.star"
    star.write_text(
        "data_particles\nloop_\n_rlnImageName #1\n"
        "000001@Extract/a.mrcs\n000002@Extract/a.mrcs\n000001@Extract/b.mrcs\n000001@Extract/gone.mrcs\n"
    )
    assert particle_bytes("particles.star", tmp_path) == 1500
    assert particle_bytes("run_it025_optimiser.star", tmp_path) is None
    assert particle_bytes(None, tmp_path) is None


def test_scratch_warning_when_particles_do_not_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import psutil

    (tmp_path / "s.mrcs").write_bytes(b"x" * 4096)
    (tmp_path / "p.star").write_text("1@s.mrcs\n")
    usage = types.SimpleNamespace(total=10**12, used=0, free=2000, percent=0.0)
    monkeypatch.setattr(psutil, "disk_usage", lambda path: usage)
    r = relion_args(["relion_refine_mpi", "--i", "p.star", "--scratch_dir", str(tmp_path / "not" / "yet")])
    text, warnings = scratch_check(r, tmp_path)
    assert text is not None and "free" in text
    assert len(warnings) == 1 and "RELION will read the rest from the project directory" in warnings[0]


def test_launch_module_imports_psutil_lazily() -> None:
    code = "import sys, relion_qsub.launch.main; sys.exit('psutil' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------------------------------------ whole runs


FAKE_SRUN = r"""#!/bin/sh
# A stand-in for srun: records what it was given, then behaves as $FAKE_SRUN_MODE says.
out=$FAKE_SRUN_DIR
printf '%s\n' "$@" > "$out/argv"
env > "$out/env"
if [ -n "$SLURM_HOSTFILE" ]; then
  cp "$SLURM_HOSTFILE" "$out/hostfile"
  stat -c %a "$SLURM_HOSTFILE" > "$out/hostfile.mode"
  stat -c %a "$(dirname "$SLURM_HOSTFILE")" > "$out/dir.mode"
fi
case $FAKE_SRUN_MODE in
  ok) echo "ranks ran"; exit 0 ;;
  fail)
    echo "srun: error: cn2: task 6: Exited with exit code 3" >&2
    echo "srun: launch/slurm: _step_signal: Terminating StepId=4242.0" >&2
    echo "srun: error: cn1: tasks 0-4: Terminated" >&2
    exit 143 ;;
  step) echo "srun: error: Unable to create step for job 4242: More processors requested than permitted" >&2
    exit 1 ;;
  hang) trap 'echo TERM > "$out/got-term"; exit 143' TERM; echo started > "$out/started"
    while :; do sleep 0.05; done ;;
esac
"""


@pytest.fixture
def fake_srun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    srun = bindir / "srun"
    srun.write_text(FAKE_SRUN)
    srun.chmod(0o755)
    record = tmp_path / "record"
    record.mkdir()
    for key in list(os.environ):
        if key.startswith("SLURM_") or key == "CUDA_VISIBLE_DEVICES":
            monkeypatch.delenv(key)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SRUN_DIR", str(record))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for key, value in JOB_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Class2D" / "job001").mkdir(parents=True)
    yield record


def relion_cmd(*extra: str) -> list[str]:
    return ["/usr/bin/relion_refine_mpi", "--o", "Class2D/job001/run", "--j", "2", "--gpu", "", *extra,
            "--pipeline_control", "Class2D/job001/"]  # fmt: skip


def test_run_plus_one_success(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_SRUN_MODE", "ok")
    assert launch.main(["--mem-per-cpu=", *relion_cmd()]) == 0
    out, err = capfd.readouterr()
    assert out.splitlines()[0].startswith("relion-launch: homogeneous+1 | ranks 9 | ranks/node 5,4")
    assert "running 9 ranks (1 leader + 2 nodes × 4 workers) of the 10 tasks allocated" in out
    assert "ranks ran" in out
    assert "dropping --mem-per-cpu=" in err
    argv = (fake_srun / "argv").read_text().splitlines()
    assert argv == ["-K1", "-n", "9", *relion_cmd()]  # no wrapper: every rank sees all of its node's GPUs
    assert (fake_srun / "hostfile").read_text() == "cn1\n" * 5 + "cn2\n" * 4
    assert (fake_srun / "hostfile.mode").read_text().strip() == "600"
    assert (fake_srun / "dir.mode").read_text().strip() == "700"
    env = dict(line.split("=", 1) for line in (fake_srun / "env").read_text().splitlines() if "=" in line)
    assert env["SLURM_DISTRIBUTION"] == "arbitrary" and "SLURM_NTASKS_PER_NODE" not in env
    assert env["SLURM_HOSTFILE"].startswith(str(tmp_path / "tmp" / "relion-launch.4242."))
    assert list((tmp_path / "tmp").iterdir()) == []  # the private dir is gone afterwards
    assert not (tmp_path / "Class2D" / "job001" / "RELION_JOB_EXIT_FAILURE").exists()


def test_run_failed_rank_gives_its_code_and_marks_failure(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_SRUN_MODE", "fail")
    assert launch.main(relion_cmd()) == 3
    _, err = capfd.readouterr()
    assert "srun: error: cn2: task 6: Exited with exit code 3" in err  # passed through
    jobdir = tmp_path / "Class2D" / "job001"
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    reason = (jobdir / "run.err").read_text()
    assert reason.count("\n") == 1 and "rank 6 on cn2 failed first (Exited with exit code 3)" in reason


def test_run_srun_cannot_create_step(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_SRUN_MODE", "step")
    assert launch.main(relion_cmd()) == 1
    assert "relion_refine_mpi ended with exit code 1" in (tmp_path / "Class2D/job001/run.err").read_text()


def test_srun_missing_is_exit_69(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # no fake needed: a PATH without srun gives the real FileNotFoundError
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert launch.main(relion_cmd()) == 69
    err = capfd.readouterr().err
    assert "relion-launch: error: srun: command not found" in err
    assert len([line for line in err.splitlines() if "error" in line]) == 1
    # RELION's GUI learns of it: the job does not show "Running" forever
    jobdir = tmp_path / "Class2D" / "job001"
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    assert (jobdir / "run.err").read_text() == (
        "relion-launch: error: srun: command not found; is Slurm installed and on PATH in the batch job?; "
        "wrote Class2D/job001/RELION_JOB_EXIT_FAILURE\n"
    )


def _only_failure_line(jobdir: Path) -> str:
    assert sorted(p.name for p in jobdir.iterdir()) == ["RELION_JOB_EXIT_FAILURE", "run.err"]
    lines = (jobdir / "run.err").read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("; wrote Class2D/job001/RELION_JOB_EXIT_FAILURE")
    return lines[0]


@pytest.mark.parametrize(
    ("change", "argv", "code", "message"),
    [
        ({"SLURM_JOB_NODELIST": "cn[1-"}, [], 65, "SLURM_JOB_NODELIST='cn[1-' is not a valid Slurm host list"),
        ({"SLURM_TASKS_PER_NODE": "99999999(x2)"}, [], 65, "SLURM_TASKS_PER_NODE='99999999(x2)' gives a node"),
        ({}, ["-K0"], 64, "srun option '-K0': relion-launch always runs srun -K1"),
        ({}, ["-n", "3"], 65, "-n 3 conflicts with the homogeneous+1 layout of 9 ranks"),
        ({}, ["--mode", "zigzag"], 64, "--mode 'zigzag': choose one of"),
        ({}, ["--env-file", "x.env"], 64, "--env-file only goes with --dry-run"),
        ({}, ["--bogus"], 64, "'--bogus' is not an srun option"),  # before the command: found by scanning argv
    ],
)
def test_launcher_errors_before_srun_mark_the_job_failed(
    fake_srun: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    change: dict[str, str],
    argv: list[str],
    code: int,
    message: str,
) -> None:
    for key, value in change.items():
        monkeypatch.setenv(key, value)
    assert launch.main([*argv, *relion_cmd()]) == code
    err = capfd.readouterr().err
    assert f"relion-launch: error: {message}" in err and err.count("error:") == 1
    assert not (fake_srun / "argv").exists()  # srun never ran
    assert _only_failure_line(tmp_path / "Class2D" / "job001").startswith(f"relion-launch: error: {message}")


def test_unexpected_exception_before_srun_marks_the_job_failed(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(launch, "make_plan", broken)
    assert launch.main(relion_cmd()) == 70
    assert "internal error: RuntimeError('a bug')" in capfd.readouterr().err
    line = _only_failure_line(tmp_path / "Class2D" / "job001")
    assert line.startswith("relion-launch: internal error: RuntimeError('a bug')")


def test_early_error_keeps_relions_exit_file_and_dry_run_writes_nothing(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    jobdir = tmp_path / "Class2D" / "job001"
    monkeypatch.setenv("SLURM_JOB_NODELIST", "cn[1-")
    assert launch.main(["--dry-run", *relion_cmd()]) == 65
    assert launch.main(["--dry-run", "--bogus", *relion_cmd()]) == 64
    assert list(jobdir.iterdir()) == []
    (jobdir / "RELION_JOB_EXIT_ABORTED").write_text("relion's")
    assert launch.main(relion_cmd()) == 65
    assert [p.name for p in jobdir.iterdir()] == ["RELION_JOB_EXIT_ABORTED"]
    capfd.readouterr()
    # without --pipeline_control there is no job directory to tell: nothing is written anywhere
    before = sorted(tmp_path.rglob("*"))
    assert launch.main(["/usr/bin/relion_refine_mpi", "--o", "Class2D/job001/run"]) == 65
    assert sorted(tmp_path.rglob("*")) == before


def test_reviewers_repro_through_bin_with_stderr_as_run_err(fake_srun: Path, tmp_path: Path) -> None:
    """RELION's template sends stderr to run.err: the error is then its one line there, not two."""
    jobdir = tmp_path / "Class2D" / "job001"
    env = dict(os.environ, SLURM_JOB_ID="1", SLURM_JOB_NODELIST="cn[1-")
    with (jobdir / "run.err").open("a") as err:
        proc = subprocess.run(
            [str(LAUNCHER), "relion_refine_mpi", "--pipeline_control", "Class2D/job001/"],
            env=env, cwd=tmp_path, stderr=err, stdout=subprocess.PIPE, check=False, timeout=30,
        )  # fmt: skip
    assert proc.returncode == 65
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    assert (jobdir / "run.err").read_text() == (
        "relion-launch: error: SLURM_JOB_NODELIST='cn[1-' is not a valid Slurm host list (unbalanced brackets)\n"
    )


def test_scripted_srun_with_pytest_subprocess(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], fp: object
) -> None:
    """pytest-subprocess for an exact srun script: a signal report and the argv relion-launch builds."""
    from pytest_subprocess import FakeProcess

    assert isinstance(fp, FakeProcess)
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "4(x2)")
    fp.register(
        ["srun", fp.any()],
        stderr=[
            b"srun: error: cn1: task 2: Segmentation fault (core dumped)",
            b"srun: error: cn[1-2]: tasks 0-1,3-7: Killed",
        ],
        returncode=143,
    )
    assert launch.main(["--no-gpu-bind", *relion_cmd()]) == 139
    call = list(fp.calls[0])
    assert call[:7] == ["srun", "-K1", "-N", "2", "--ntasks-per-node=4", "-n", "8"]
    assert call[7:] == relion_cmd()
    assert "Segmentation fault" in capfd.readouterr().err


def test_gui_gpu_ids_beyond_the_node_and_old_bind_setting_are_warned(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    cmd = ["/usr/bin/relion_refine_mpi", "--gpu", "0:1:2:3:4"]
    assert launch.main(["--dry-run", *cmd]) == 0
    out = capfd.readouterr().out
    assert (
        "warning:   --gpu '0:1:2:3:4' (the GUI's 'Which GPUs to use') gives rank 5 device 4, but each rank sees" in out
    )
    assert "  rank 5      cn2              GPU <device 4: not on the node>" in out
    monkeypatch.setenv("RELION_LAUNCH_GPU_BIND", "1")
    assert launch.main(["--dry-run", "/usr/bin/relion_refine_mpi"]) == 0
    assert "RELION_LAUNCH_GPU_BIND=1 has no effect" in capfd.readouterr().err
    monkeypatch.setenv("RELION_LAUNCH_GPU_BIND", "0")  # what the old docs said to set: nothing to say
    assert launch.main(["--dry-run", "/usr/bin/relion_refine_mpi"]) == 0
    assert "RELION_LAUNCH_GPU_BIND" not in capfd.readouterr().err


def test_run_out_tells_relions_mapping_and_shared_gpus(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FAKE_SRUN_MODE", "ok")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # 4 workers per node on 2 GPUs: two share each
    assert launch.main(relion_cmd()) == 0
    out, err = capfd.readouterr()
    assert "| GPUs/rank 1 of 2 visible (leader none, 4 shared) |" in out.splitlines()[0]
    assert "relion-launch: relion_refine_mpi maps its followers' threads (rank 0 does no GPU work)" in out
    assert "warning: Device 0 on cn1 (GPU 0) would be shared by 2 ranks (1, 2): relion_refine_mpi gives" in err


def test_dry_run_with_env_file(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "job.env"
    f.write_text("".join(f"{k}={v}\n" for k, v in JOB_ENV.items()))
    assert launch.main(["--dry-run", "--env-file", str(f), *relion_cmd()]) == 0
    out = capfd.readouterr().out
    assert "mode:      homogeneous+1" in out
    assert "argv:      srun -K1 -n 9 /usr/bin/relion_refine_mpi --o Class2D/job001/run --j 2 --gpu '' " in out
    assert "hostfile (9 lines):" in out
    assert "rank 0      cn1              GPU none (leader)" in out
    assert "rank 8      cn2              GPU 3" in out
    assert (
        "summary:   relion-launch: homogeneous+1 | ranks 9 | ranks/node 5,4 | GPUs/rank 1 of 4 visible (leader" in out
    )


@pytest.mark.parametrize("mode", ["homogeneous+1", "homogeneous"])
def test_dry_run_gpus_are_cudas_indices(tmp_path: Path, capfd: pytest.CaptureFixture[str], mode: str) -> None:
    """Shared-node job with device cgroups: SLURM_JOB_GPUS has the node's ids, CUDA_VISIBLE_DEVICES CUDA's; RELION
    indexes what CUDA sees, so the plan shows those."""
    env = dict(JOB_ENV, SLURM_JOB_GPUS="2,3", CUDA_VISIBLE_DEVICES="0,1", SLURM_GPUS_ON_NODE="2")
    f = tmp_path / "job.env"
    f.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    assert launch.main(["--dry-run", "--env-file", str(f), "--mode", mode, *relion_cmd()]) == 0
    out = capfd.readouterr().out
    assert "node GPUs: 0,1 (from CUDA_VISIBLE_DEVICES; every rank sees all of them)" in out
    rows = re.findall(r"^  rank (\d+) +(\S+) +GPU (.+)$", out, re.MULTILINE)
    assert len(rows) == (9 if mode == "homogeneous+1" else 10)
    shown = {gpu for _, _, gpu in rows}
    # homogeneous, --j 2: cn2's 5 followers split 2 devices 10 thread-ways, so one follower spans both (2*4/10, 2*5/10)
    assert shown == ({"none (leader)", "0", "1"} if mode == "homogeneous+1" else {"none (leader)", "0", "1", "0,1"})


def test_dry_run_large_plan_is_clipped(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "job.env"
    env = dict(JOB_ENV, SLURM_JOB_NODELIST="cn[0001-1000]", SLURM_JOB_NUM_NODES="1000",
               SLURM_NTASKS="5000", SLURM_TASKS_PER_NODE="5(x1000)")  # fmt: skip
    f.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    assert launch.main(["--dry-run", "--env-file", str(f), "relion_refine_mpi"]) == 0
    out = capfd.readouterr().out
    assert "hostfile (4001 lines):" in out and "more)" in out and len(out.splitlines()) < 200


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"SLURM_TASKS_PER_NODE": "99999999(x2)", "SLURM_NTASKS_PER_NODE": "99999999"},
            "SLURM_TASKS_PER_NODE='99999999(x2)' gives a node 99,999,999 tasks, more than relion-launch's limit",
        ),
        ({"SLURM_TASKS_PER_NODE": "5(x99999999)"}, "SLURM_TASKS_PER_NODE='5(x99999999)' describes 99999999 nodes"),
        ({"SLURM_NTASKS": "2000000000"}, "SLURM_NTASKS=2000000000 is more than relion-launch's limit of 1,000,000"),
        (
            {
                "SLURM_JOB_NODELIST": "cn[000001-100000]",
                "SLURM_JOB_NUM_NODES": "100000",
                "SLURM_NTASKS": "",
                "SLURM_TASKS_PER_NODE": "10000(x100000)",
                "SLURM_NTASKS_PER_NODE": "10000",
            },
            "SLURM_NTASKS_PER_NODE=10000 on 100000 nodes gives 1,000,000,000 ranks",
        ),
        ({"SLURM_GPUS_ON_NODE": "99999999", "SLURM_JOB_GPUS": "", "CUDA_VISIBLE_DEVICES": ""}, "SLURM_GPUS_ON_NODE"),
    ],
)
def test_huge_counts_in_an_env_file_fail_fast(tmp_path: Path, change: dict[str, str], message: str) -> None:
    f = tmp_path / "job.env"
    f.write_text("".join(f"{k}={v}\n" for k, v in {**JOB_ENV, **change}.items()))
    started = time.monotonic()
    proc = subprocess.run(
        [str(LAUNCHER), "--dry-run", "--env-file", str(f), "relion_refine_mpi"],
        capture_output=True, text=True, timeout=20, check=False,
    )  # fmt: skip
    assert time.monotonic() - started < 10
    assert proc.returncode == 65 and proc.stderr.count("\n") == 1, proc.stderr
    assert message in proc.stderr


def test_largest_allowed_plan_is_quick(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "job.env"
    env = dict(JOB_ENV, SLURM_JOB_NODELIST="cn[0001-1000]", SLURM_JOB_NUM_NODES="1000", SLURM_NTASKS="999000",
               SLURM_NTASKS_PER_NODE="999", SLURM_TASKS_PER_NODE="999(x1000)")  # fmt: skip
    f.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    started = time.monotonic()
    assert launch.main(["--dry-run", "--env-file", str(f), "relion_refine_mpi"]) == 0
    assert time.monotonic() - started < 5
    out = capfd.readouterr().out
    assert "ranks:     998001" in out and len(out.splitlines()) < 200
    assert "  rank 998000 cn1000           GPU all visible (unused: CPU run)" in out  # no --gpu


def test_usage_errors_are_one_line_with_sysexits(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert launch.main([]) == 64
    assert capfd.readouterr().err.startswith("relion-launch: error: no command given")
    assert launch.main(["--env-file", "x", "cmd"]) == 64
    capfd.readouterr()
    monkeypatch.setenv("SLURM_TASKS_PER_NODE", "5(x3)")
    assert launch.main(["--dry-run", "cmd"]) == 65
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "SLURM_TASKS_PER_NODE='5(x3)' describes 3 nodes" in err
    assert launch.main(["-v", "--dry-run", "cmd"]) == 65
    assert "Traceback" in capfd.readouterr().err
    assert launch.main(["--mode", "zigzag", "--dry-run", "cmd"]) == 64


def test_help(capfd: pytest.CaptureFixture[str]) -> None:
    assert launch.main(["--help"]) == 0
    out = capfd.readouterr().out
    assert "usage: relion-launch" in out and "Examples:" in out and "--mem-per-cpu=XXXextra2XXX" in out


# ------------------------------------------------------------------------------------- signals (real processes)


def _start_launcher(env: dict[str, str], *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(LAUNCHER), *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_for(path: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def test_sigterm_is_forwarded_and_marks_failure(fake_srun: Path, tmp_path: Path) -> None:
    env = dict(os.environ, FAKE_SRUN_MODE="hang")
    proc = _start_launcher(env, *relion_cmd(), cwd=tmp_path)
    _wait_for(fake_srun / "started")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 143, err
    assert (fake_srun / "got-term").exists()  # srun got the signal to pass on
    jobdir = tmp_path / "Class2D" / "job001"
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    assert "got SIGTERM" in (jobdir / "run.err").read_text()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_sigterm_keeps_relions_success(fake_srun: Path, tmp_path: Path) -> None:
    jobdir = tmp_path / "Class2D" / "job001"
    (jobdir / "RELION_JOB_EXIT_SUCCESS").touch()
    proc = _start_launcher(dict(os.environ, FAKE_SRUN_MODE="hang"), *relion_cmd(), cwd=tmp_path)
    _wait_for(fake_srun / "started")
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    assert proc.returncode == 143
    assert sorted(p.name for p in jobdir.iterdir()) == ["RELION_JOB_EXIT_SUCCESS"]


# ------------------------------------------------------------------------------------------------ Abort, many runs


def test_abort_before_the_start_ends_at_once_without_running_the_program(
    fake_srun: Path, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The GUI's Abort of a job still pending in Slurm only creates RELION_JOB_ABORT_NOW (src/gui_mainwindow.cpp);
    # the program would run until its first check. relion-launch ends the job as RELION's program would on Abort.
    jobdir = tmp_path / "Class2D" / "job001"
    (jobdir / "RELION_JOB_ABORT_NOW").touch()
    assert launch.main(relion_cmd()) == 2  # exit(RELION_EXIT_ABORTED), src/pipeline_control.h
    assert not (fake_srun / "argv").exists()  # srun never ran
    assert sorted(p.name for p in jobdir.iterdir()) == ["RELION_JOB_ABORT_NOW", "RELION_JOB_EXIT_ABORTED", "run.err"]
    line = (jobdir / "run.err").read_text()
    assert line.count("\n") == 1 and "aborted from RELION" in line and "relion_refine_mpi was not run" in line


def test_abort_not_honoured_within_the_grace_ends_the_step(fake_srun: Path, tmp_path: Path) -> None:
    env = dict(os.environ, FAKE_SRUN_MODE="hang", RELION_LAUNCH_ABORT_GRACE="0.5")
    proc = _start_launcher(env, *relion_cmd(), cwd=tmp_path)
    _wait_for(fake_srun / "started")
    jobdir = tmp_path / "Class2D" / "job001"
    started = time.monotonic()
    (jobdir / "RELION_JOB_ABORT_NOW").touch()
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 2, err
    assert 0.5 <= time.monotonic() - started < 10
    assert (fake_srun / "got-term").exists()  # srun was told to end the step
    assert sorted(p.name for p in jobdir.iterdir()) == ["RELION_JOB_ABORT_NOW", "RELION_JOB_EXIT_ABORTED", "run.err"]
    assert "aborted from RELION: relion_refine_mpi had not stopped 0.5 s after" in (jobdir / "run.err").read_text()


def test_abort_grace_must_be_a_number(fake_srun: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RELION_LAUNCH_ABORT_GRACE", "soon")
    assert launch.main(relion_cmd()) == 65
    assert "RELION_LAUNCH_ABORT_GRACE='soon'" in (tmp_path / "Class2D" / "job001" / "run.err").read_text()


def test_a_run_relion_replaced_writes_no_exit_file(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # RELION's Continue rewrites run_submit.script and removes the exit files before it submits again
    # (src/pipeliner.cpp, runJob): the old run's late failure must not become the new run's ending.
    from relion_qsub.relion import runs

    jobdir = tmp_path / "Class2D" / "job001"
    script = jobdir / "run_submit.script"
    script.write_text("first run\n")
    stamp = runs.Stamp.of(script)
    assert stamp is not None
    monkeypatch.setenv(runs.ENV, stamp.encode())
    monkeypatch.setenv("FAKE_SRUN_MODE", "fail")
    script.unlink()
    script.write_text("second run\n")  # RELION's rewrite: a new file
    assert launch.main(relion_cmd()) == 3
    assert not (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    line = (jobdir / "run.err").read_text()
    assert line.count("\n") == 1 and "rank 6 on cn2 failed first" in line
    assert "this run is no longer current (RELION has started a new run of" in line
    assert capfd.readouterr().err.count("rank 6 on cn2 failed first") == 1  # said once (run.err is not stderr here)


# ------------------------------------------------------------------------------------------------ local (no allocation)


@pytest.fixture
def local_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in list(os.environ):
        if key.startswith(("SLURM_", "RELION_")):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_local_single_rank_runs_the_program(local_env: Path, capfd: pytest.CaptureFixture[str]) -> None:
    prog = local_env / "relion_fake"
    prog.write_text('#!/bin/sh\necho "args: $*"\nexit 5\n')
    prog.chmod(0o755)
    assert launch.main([str(prog), "--j", "1"]) == 5
    out = capfd.readouterr().out
    assert "relion-launch: local | ranks 1" in out and "args: --j 1" in out


def test_local_mpi_uses_relion_mpirun(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    mpirun = local_env / "my-mpirun"
    mpirun.write_text('#!/bin/sh\necho "mpirun: $*"\n')
    mpirun.chmod(0o755)
    monkeypatch.setenv("RELION_MPIRUN", f"{mpirun} --oversubscribe")
    monkeypatch.setenv("RELION_LAUNCH_NP", "2")
    assert launch.main(["relion_refine_mpi", "--j", "1"]) == 0
    assert "mpirun: --oversubscribe -n 2 relion_refine_mpi --j 1" in capfd.readouterr().out


def test_local_dry_run(local_env: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert launch.main(["--dry-run", "-n", "3", "relion_refine_mpi", "--j", "2"]) == 0
    out = capfd.readouterr().out
    assert "argv:      mpirun -n 3 relion_refine_mpi --j 2" in out and "rank 2      (this node)" in out


def test_local_cpu_check(local_env: Path, capfd: pytest.CaptureFixture[str]) -> None:
    cpus = len(os.sched_getaffinity(0))
    assert launch.main(["-n", str(cpus + 1), "relion_refine_mpi", "--j", "4"]) == 64
    err = capfd.readouterr().err
    assert f"need {(cpus + 1) * 4} CPUs but this node has {cpus} usable" in err


def test_local_missing_mpirun(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RELION_MPIRUN", str(local_env / "no-such-mpirun"))
    assert launch.main(["-n", "2", "relion_refine_mpi"]) == 69
    assert "command not found; check the command (or RELION_MPIRUN)" in capfd.readouterr().err


def test_bin_wrapper_reaches_launch_main(tmp_path: Path) -> None:
    proc = subprocess.run([str(LAUNCHER), "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "usage: relion-launch" in proc.stdout


def test_supervise_reports_unrunnable_programs_as_command_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a program\n")
    with pytest.raises(CommandError, match="not executable"):
        supervise([str(text)], {}, scan_srun=False, on_kill=lambda s: None)
    text.chmod(0o755)  # executable but no #! line and not ELF
    with pytest.raises(CommandError, match="cannot run it"):
        supervise([str(text)], {}, scan_srun=False, on_kill=lambda s: None)
    assert LAUNCHER.exists() and os.stat(LAUNCHER).st_mode & stat.S_IXUSR


# The child arms the parent-death signal, says so, and records the SIGTERM it gets when its parent shell exits.
ORPHAN = """
import signal, sys, time
from relion_qsub.launch.supervise import term_when_parent_dies
def got(signum, frame):
    open(sys.argv[1], "w").write("TERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, got)
assert term_when_parent_dies()
open(sys.argv[1] + ".armed", "w").close()
time.sleep(30)
"""


def test_parent_death_is_a_sigterm(tmp_path: Path) -> None:
    """As the batch shell under proctrack/cgroup: it dies of scancel's SIGTERM, relion-launch below it gets none."""
    marker = tmp_path / "got"
    shell = 'python=$1; shift; "$python" -c "$@" & until [ -e "$2.armed" ]; do sleep 0.05; done'
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run(["sh", "-c", shell, "sh", sys.executable, ORPHAN, str(marker)], env=env, timeout=30, check=True)
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.read_text() == "TERM"


# ------------------------------------------------------------------------------ RELION 5's Python programs


def _stand_in(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(exist_ok=True)
    prog = directory / name
    prog.write_text(f"#!/bin/sh\n{body}\n")
    prog.chmod(0o755)
    return prog


@pytest.mark.parametrize("spelling", ["--pipeline-control", "--pipeline_control"])
def test_failing_python_program_with_either_pipeline_control_gets_its_exit_file(
    local_env: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], spelling: str
) -> None:
    """ModelAngelo and DynaMight pass --pipeline-control (src/pipeline_jobs.cpp prepareFinalCommand,
    do_dash_for_python): a failed run must still tell RELION, or its GUI shows the job Running for ever."""
    # stand-in for relion_python_modelangelo: dies as it would when CUDA or a weight file is missing
    bindir = local_env / "bin"
    _stand_in(bindir, "relion_python_modelangelo", 'echo "modelangelo: $*" >&2\nexit 1')
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    jobdir = local_env / "ModelAngelo" / "job042"
    jobdir.mkdir(parents=True)
    command = ["relion_python_modelangelo", "build", "-d", "0", "-o", "ModelAngelo/job042/", spelling]
    assert launch.main([*command, "ModelAngelo/job042/"]) == 1
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    assert "relion_python_modelangelo ended with exit code 1" in (jobdir / "run.err").read_text()
    capfd.readouterr()


def test_relion_args_read_both_pipeline_control_spellings() -> None:
    assert relion_args(["relion_python_dynamight", "--pipeline-control", "D/job001/"]).pipeline_control == "D/job001/"
    assert relion_args(["relion_refine", "--pipeline_control", "C/job001/"]).pipeline_control == "C/job001/"
    assert relion_args(["relion_refine", "--pipeline-controls", "C/"]).pipeline_control is None  # whole words only


@pytest.mark.parametrize(
    ("command", "missing", "why"),
    [
        (["relion_python_modelangelo", "build", "-d", "0"], "relion_python_modelangelo", "the job's command"),
        (["relion_python_dynamight", "optimize-deformations"], "relion_python_dynamight", "the job's command"),
        (
            ["relion_refine_mpi", "--o", "Refine3D/job001/run", "--blush", "--gpu", ""],
            "relion_python_blush",
            "relion_refine_mpi --blush runs it for every reconstruction",
        ),
    ],
    ids=["modelangelo", "dynamight", "blush"],
)
def test_missing_python_program_stops_before_srun_and_tells_relion(
    fake_srun: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: list[str],
    missing: str,
    why: str,
) -> None:
    monkeypatch.setenv("FAKE_SRUN_MODE", "ok")
    jobdir = tmp_path / "Class2D" / "job001"
    assert launch.main([*command, "--pipeline-control", "Class2D/job001/"]) == 69
    assert not (fake_srun / "argv").exists()  # srun never ran
    assert (jobdir / "RELION_JOB_EXIT_FAILURE").exists()
    line = (jobdir / "run.err").read_text()
    assert line.count("\n") == 1
    assert (
        f"relion-launch: error: {missing} ({why}) is not on PATH inside the job: it must be on PATH on the compute"
        in line
    )
    capfd.readouterr()


def test_python_program_given_by_a_path_that_is_not_there(
    fake_srun: Path, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = str(tmp_path / "conda" / "bin" / "relion_python_dynamight")
    assert launch.main([missing, "optimize-deformations", "--pipeline-control", "Class2D/job001/"]) == 69
    line = (tmp_path / "Class2D" / "job001" / "run.err").read_text()
    assert f"relion-launch: error: {missing} (the job's command) is not an executable file on this compute node" in line
    capfd.readouterr()


def test_python_programs_on_path_start_and_dry_run_only_warns(
    fake_srun: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("FAKE_SRUN_MODE", "ok")
    blush = ["relion_refine_mpi", "--o", "Refine3D/job001/run", "--blush", "--gpu", "", "--pipeline_control", "x/"]
    assert launch.main(["--dry-run", *blush]) == 0
    assert "warning: relion_python_blush (relion_refine_mpi --blush" in capfd.readouterr().err
    _stand_in(tmp_path / "bin", "relion_python_blush", "echo success")
    assert launch.main(blush) == 0
    assert (fake_srun / "argv").read_text().splitlines()[-len(blush) :] == blush
    capfd.readouterr()
