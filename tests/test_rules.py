"""Each normalisation rule on the smallest script that shows it; policies; idempotence."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relion_qsub import profile
from relion_qsub.checks.core import Context
from relion_qsub.checks.engine import normalise, parse_cli_options
from relion_qsub.checks.registry import ALL_POLICY
from relion_qsub.errors import ProfileError
from relion_qsub.relion.gui import Boxes
from relion_qsub.script import parse

BIOWULF = profile.load("biowulf")
HEAD = "#!/bin/bash\n"
LAUNCH = (
    '${RELION_STD_LAUNCHER} `which relion_refine_mpi` --o Class2D/job001/run --i p.star --gpu "" '
    "--pipeline_control Class2D/job001/\n"
)


def run(text: str, site: profile.Site = BIOWULF, cli: list[str] | None = None, boxes: Boxes | None = None):  # type: ignore[no-untyped-def]
    ctx = Context(site, parse_cli_options(cli or [], site_options=site.site_options), boxes or Boxes(None, {}))
    result = normalise(parse(text, site_options=site.site_options), ctx)
    again = normalise(result.script, ctx)
    # Idempotent: a normalised script needs no further repair.
    assert again.script.render() == result.script.render()
    assert [c for c in again.changes if c.action == "fixed"] == []
    return result


def actions(result) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(c.rule, c.action) for c in result.changes]


def test_clean_script_is_untouched() -> None:
    text = HEAD + "#SBATCH --ntasks=4 --partition=norm --time=1:00:00\nsrun hostname\n"
    result = run(text)
    assert result.script.render() == text and result.changes == ()


def test_empty_values_and_bare_directives_are_dropped() -> None:
    result = run(
        HEAD + "#SBATCH --ntasks=4\n#SBATCH --gres=\n#SBATCH --time=\n#SBATCH \n#SBATCH --mem-per-cpu=\nhostname\n"
    )
    assert result.script.render() == HEAD + "#SBATCH --ntasks=4\nhostname\n"
    assert {a for a in actions(result)} == {("empty-directive", "fixed")}
    assert len(result.changes) == 4


def test_unfilled_placeholder_in_a_directive_is_dropped_with_a_warning() -> None:
    result = run(HEAD + "#SBATCH --time=XXXextra1XXX\n#SBATCH XXXextra4XXX\nhostname\n")
    assert result.script.render() == HEAD + "hostname\n"
    assert actions(result) == [("unfilled-placeholder", "warning")] * 2
    assert "RELION_QSUB_EXTRA1" in result.changes[0].message


def test_unfilled_placeholder_in_the_body_is_an_error() -> None:
    result = run(HEAD + "#SBATCH -n 1\nrelion_refine XXXextra7XXX\n")
    assert not result.ok and "RELION_QSUB_EXTRA7" in result.errors[0].message


def test_exlusive_is_repaired() -> None:
    result = run(HEAD + "#SBATCH --nodes=4 --ntasks-per-node=5 --exlusive\nhostname\n")
    assert result.script.render() == HEAD + "#SBATCH --nodes=4 --ntasks-per-node=5 --exclusive\nhostname\n"
    assert actions(result) == [("typo", "fixed")]


def test_far_typo_is_an_error_saying_to_remove_it() -> None:
    result = run(HEAD + "#SBATCH --frobnicate\nhostname\n")
    assert not result.ok
    expected = "unrecognized option '--frobnicate': remove it from the 'SBATCH Directives' box"
    assert result.errors[0].message.startswith(expected)


def test_near_but_ambiguous_typo_names_the_nearest_options() -> None:
    # Two options within reach ("--nodes"/"--nodelist"... ): no repair, but the candidates are named.
    result = run(HEAD + "#SBATCH --node=2\nhostname\n")
    message = result.errors[0].message if result.errors else ""
    assert "ambiguous" in message or "did you mean" in message, result.changes


def test_ambiguous_prefix_is_an_error() -> None:
    result = run(HEAD + "#SBATCH --ntasks-per=5\nhostname\n")
    assert "ambiguous" in result.errors[0].message


def test_stray_word_is_an_error() -> None:
    result = run(HEAD + "#SBATCH gpu:p100:4\nhostname\n")
    assert "Invalid directive" in result.errors[0].message


def test_mem_next_to_mem_per_cpu_is_dropped() -> None:
    result = run(HEAD + "#SBATCH --mem-per-cpu=4g\n#SBATCH --mem=100g\nhostname\n")
    assert result.script.render() == HEAD + "#SBATCH --mem-per-cpu=4g\nhostname\n"
    assert actions(result) == [("memory-conflict", "fixed")]


def test_memory_on_the_command_line_replaces_the_scripts() -> None:
    result = run(HEAD + "#SBATCH --mem-per-cpu=4g\nhostname\n", cli=["--mem=10g"])
    assert result.script.render() == HEAD + "hostname\n"


def test_empty_launcher_memory_is_removed_from_the_body() -> None:
    text = HEAD + "#SBATCH -n 4\n${RELION_STD_LAUNCHER} --mem-per-cpu= `which relion_run_ctffind_mpi` --i x\n"
    result = run(text)
    assert result.script.body() == ["${RELION_STD_LAUNCHER} `which relion_run_ctffind_mpi` --i x"]
    text = HEAD + "#SBATCH -n 4\n${RELION_STD_LAUNCHER} --mem-per-cpu=XXXextra2XXX relion_x_mpi\n"
    assert run(text).script.body() == ["${RELION_STD_LAUNCHER} relion_x_mpi"]


def test_several_gres_are_merged() -> None:
    result = run(HEAD + "#SBATCH --gres=lscratch:200\n#SBATCH --gres=gpu:p100:4 -p gpu\nhostname\n")
    # A line a rule touched is rendered anew in the long form.
    assert (
        result.script.render() == HEAD + "#SBATCH --gres=lscratch:200,gpu:p100:4\n#SBATCH --partition=gpu\nhostname\n"
    )


def test_duplicate_gres_keep_the_larger_and_the_typed() -> None:
    result = run(HEAD + "#SBATCH --gres=lscratch:200,gpu:4\n#SBATCH --gres=lscratch:400,gpu:p100:4 -p gpu\nx\n")
    assert result.script.last("gres") == "lscratch:400,gpu:p100:4"


def test_scratch_dir_is_injected_when_lscratch_is_allocated() -> None:
    text = HEAD + "#SBATCH -p gpu --gres=lscratch:400,gpu:p100:4 -c 2\n" + LAUNCH
    (line,) = run(text).script.body()
    assert "`which relion_refine_mpi` --scratch_dir /lscratch/$SLURM_JOB_ID --o" in line


def test_no_scratch_injection_with_preread_images() -> None:
    text = (
        HEAD
        + "#SBATCH -p gpu --gres=lscratch:400,gpu:p100:4 -c 2\n"
        + LAUNCH.replace("--gpu", "--preread_images --gpu")
    )
    assert "--scratch_dir" not in run(text).script.body()[0]


def test_scratch_dir_without_gres_gets_the_site_minimum() -> None:
    text = HEAD + "#SBATCH -p norm\nrelion_refine --o x --scratch_dir /lscratch/$SLURM_JOB_ID\n"
    result = run(text)
    assert result.script.last("gres") == "lscratch:5"


def test_scratch_dir_without_job_id_warns() -> None:
    text = HEAD + "#SBATCH -p norm --gres=lscratch:50\nrelion_refine --o x --scratch_dir /lscratch\n"
    assert ("scratch-job-id", "warning") in actions(run(text))


def test_ntasks_must_equal_nodes_times_tasks_per_node() -> None:
    result = run(HEAD + "#SBATCH --ntasks=16 --nodes=4 --ntasks-per-node=5\nhostname\n")
    assert not result.ok and "20" in result.errors[0].message


def test_too_many_threads_per_gpu_is_an_error() -> None:
    result = run(HEAD + "#SBATCH -p gpu --gres=gpu:k80:4 -n 8 --cpus-per-task=2\nhostname\n")
    assert not result.ok and "k80" in result.errors[0].message and "1" in result.errors[0].message


def test_policy_can_turn_an_error_into_a_warning() -> None:
    lenient = dataclasses.replace(BIOWULF, policy={**BIOWULF.policy, "threads_per_gpu": "warn"})
    result = run(HEAD + "#SBATCH -p gpu --gres=gpu:k80:4 -n 8 --cpus-per-task=2\nhostname\n", site=lenient)
    assert result.ok and ("threads-per-gpu", "warning") in actions(result)


def test_more_tasks_per_node_than_gpus_plus_one_warns() -> None:
    result = run(HEAD + "#SBATCH -p gpu --gres=gpu:p100:4 -N 2 --ntasks-per-node=8 -n 16\nhostname\n")
    assert ("tasks-per-gpu", "warning") in actions(result)


def test_homogeneous_plus_one_needs_the_launcher() -> None:
    head = HEAD + "#SBATCH -p gpu --gres=gpu:p100:4 -N 2 --ntasks-per-node=5 -n 10 -c 2\n"
    bare = run(head + "srun relion_refine_mpi --o x --gpu\n")
    assert ("plus-one-launcher", "warning") in actions(bare)
    assert ("plus-one-launcher", "warning") not in actions(run(head + LAUNCH))


def test_gpu_gres_in_a_cpu_partition_is_an_error() -> None:
    result = run(HEAD + "#SBATCH -p multinode --gres=gpu:p100:4\nhostname\n")
    assert not result.ok and "'multinode' has none" in result.errors[0].message
    assert result.errors[0].message.endswith("set 'Queue name' to gpu")


def test_unknown_gpu_type_in_partition_is_an_error() -> None:
    assert not run(HEAD + "#SBATCH -p gpu --gres=gpu:h100:4\nhostname\n").ok


def test_gpu_flag_without_gpu_gres_is_an_error() -> None:
    assert not run(HEAD + "#SBATCH -p norm\n" + LAUNCH).ok


def test_unknown_partition_follows_policy() -> None:
    assert ("unknown-partition", "warning") in actions(run(HEAD + "#SBATCH -p nosuch\nhostname\n"))
    testbed = profile.load("testbed")
    assert not run(HEAD + "#SBATCH -p nosuch\nhostname\n", site=testbed).ok


def test_directive_after_first_command_warns() -> None:
    result = run(HEAD + "hostname\n#SBATCH --ntasks=4\n")
    assert actions(result) == [("ignored-directive", "warning")]


def test_every_rule_can_be_turned_off() -> None:
    off = dataclasses.replace(BIOWULF, policy={k: "off" for k in ALL_POLICY})
    text = HEAD + "#SBATCH --gres= --exlusive\nhostname\n"
    result = normalise(parse(text), Context(off))
    assert result.changes == () and result.script.render() == text


def test_single_process_gpu_jobs_may_use_many_threads() -> None:
    # The seed's VDAM / subtomogram de novo rows: 1 process, 16-64 threads over 4 GPUs.
    assert run(HEAD + "#SBATCH -p gpu --gres=gpu:k80:4 -n 1 --cpus-per-task=16\nhostname\n").ok


WORDS = [
    "--ntasks=4",
    "-n",
    "8",
    "--nodes=2",
    "-N2",
    "--ntasks-per-node=5",
    "--exlusive",
    "--exclusive",
    "--gres=",
    "--gres=lscratch:200",
    "--gres=gpu:p100:4",
    "--gres=gpu:4,lscratch:50",
    "--mem=4g",
    "--mem-per-cpu=2g",
    "--mem-per-gpu=8g",
    "--time=",
    "-t",
    "1:00:00",
    "--partition=gpu",
    "-p",
    "norm",
    "--cpus-per-task=4",
    "-c",
    "XXXextra4XXX",
    "--comment='a b'",
    "--frobnicate",
    "--part=gpu",
    "#",
    "--ntasks-per",
    "--constraint=x2695",
    "--mem=GB",
    "--gres=gpu:",
    "-C",
    "gpup100",
    "--qos=XXXqosXXX",
    "--gpu_cmode=shared",
]
BODIES = [
    "hostname",
    '${RELION_STD_LAUNCHER} --mem-per-cpu= `which relion_refine_mpi` --o x --gpu "" --pipeline_control d/',
    "srun relion_refine_mpi --o x --scratch_dir /lscratch/$SLURM_JOB_ID",
    "relion_refine --o x --preread_images --scratch_dir /tmp/s",
    "echo XXXcommandXXX",
    "echo srun --mem-per-cpu= relion_refine --o x",
    "srun --mem-per-cpu= -n 2 --mpi=pmix bash -c 'relion_refine  --o x'",
    "#$ -pe openmpi 4",
    "# sbatch --mem=10g",
]


@given(
    st.lists(st.lists(st.sampled_from(WORDS), max_size=4), max_size=8),
    st.lists(st.sampled_from(BODIES), min_size=1, max_size=3),
    st.sampled_from(["biowulf", "testbed"]),
)
@settings(max_examples=int(os.environ.get("RELION_QSUB_FUZZ_EXAMPLES", "300")), deadline=None)
def test_any_script_normalises_idempotently_and_never_crashes(
    directives: list[list[str]], body: list[str], site_name: str
) -> None:
    text = HEAD + "".join("#SBATCH " + " ".join(words) + "\n" for words in directives) + "\n".join(body) + "\n"
    chosen = profile.load(site_name)
    result = run(text, site=chosen)  # asserts idempotence
    for change in result.changes:
        assert change.message and "\n" not in change.message  # one line each
    if result.ok:
        # What we would submit has no problem sbatch would stop at.
        assert all(p.problem is None for _, _, p in result.script.options())
        assert not any(p.value == "" for _, _, p in result.script.options())


def test_duplicates_inside_one_gres_are_combined_and_none_is_left_alone() -> None:
    assert run(HEAD + "#SBATCH --gres=lscratch:200,lscratch:400\nx\n").script.last("gres") == "lscratch:400"
    text = HEAD + "#SBATCH --gres=none\nx\n"
    assert run(text).script.render() == text


def test_launcher_repair_touches_only_the_launchers_empty_option() -> None:
    # Issue 15 class 2: the quoted command keeps its spacing; only srun's own empty option goes.
    text = HEAD + "#SBATCH -n 4\nsrun --mem-per-cpu= bash --norc -c 'echo  a   b'\n"
    assert run(text).script.body() == ["srun bash --norc -c 'echo  a   b'"]
    text = HEAD + '#SBATCH -n 4\nsrun -n 4 --mem-per-cpu=  --mpi=pmix  "${CMD}"  --x= \n'
    assert run(text).script.body() == ['srun -n 4  --mpi=pmix  "${CMD}"  --x= ']


def test_lines_that_only_mention_srun_are_not_launcher_lines() -> None:
    for body in ("echo srun --mem-per-cpu= --mpi=pmi2 relion_x", "relion_x --o y --srun-opt= z", "# srun --mem="):
        text = HEAD + "#SBATCH -n 4\n" + body + "\n"
        assert run(text).script.render() == text, body


def test_site_plugin_options_pass_through_and_are_never_repaired() -> None:
    # Issue 15 class 4: SPANK options the profile lists are sbatch options at that site.
    spank = dataclasses.replace(BIOWULF, site_options={"gpu_cmode": "required", "auks": "optional"})
    text = HEAD + "#SBATCH -n 1 --gpu_cmode=shared --auks=yes\n#SBATCH --gpu_cmode exclusive\nhostname\n"
    assert not run(text).ok  # stock sbatch: unrecognized options
    result = run(text, site=spank)
    assert result.ok and result.script.render() == text
    assert [c.rule for c in result.changes] == ["repeated-option"]  # sbatch keeps the last --gpu_cmode
    # Not "repaired" into a near stock option either (--auk would be --auks, not --ack...).
    assert run(HEAD + "#SBATCH --auks\nhostname\n", site=spank).script.render() == HEAD + "#SBATCH --auks\nhostname\n"


def test_site_options_are_read_from_the_profile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "spank.toml"
    path.write_text('[site_options]\ngpu_cmode = "required"\nauks = "optional"\n')
    assert profile.load(str(path)).site_options == {"gpu_cmode": "required", "auks": "optional"}
    path.write_text('[site_options]\n"--auks" = "optional"\n')
    try:
        profile.load(str(path))
    except ProfileError as exc:
        assert "site_options" in str(exc)
    else:
        raise AssertionError("a name with -- must be refused")


BOXES_TEMPLATE = [
    "#!/bin/bash",
    "#SBATCH --partition=XXXqueueXXX",
    "#SBATCH --mem=XXXextra2XXXGB",
    "#SBATCH XXXextra4XXX",
    "srun XXXcommandXXX",
]
LABELS = {2: "Memory (GB)", 4: "More sbatch options"}


def test_hints_name_the_templates_own_boxes() -> None:
    # Issue 15 class 6: a word from the template's 'More sbatch options' box, not "an SBATCH Directives box".
    boxes = Boxes(BOXES_TEMPLATE, LABELS)
    text = HEAD + "#SBATCH --partition=gpu\n#SBATCH --mem=GB\n#SBATCH gpu:p100:1\nsrun x --gpu\n"
    result = run(text, boxes=boxes)
    messages = {c.rule: c.message for c in result.changes}
    assert "the 'Memory (GB)' box (RELION_QSUB_EXTRA2)" in messages["partly-empty"]
    assert "it came from the 'More sbatch options' box (RELION_QSUB_EXTRA4)" in messages["typo"]
    gpu = run(HEAD + "#SBATCH -p norm\n" + LAUNCH, boxes=boxes).errors[0].message
    assert "--gres=gpu:N in the 'More sbatch options' box (RELION_QSUB_EXTRA4)" in gpu
    bare = Boxes(BOXES_TEMPLATE[:3] + BOXES_TEMPLATE[4:], LABELS)
    gpu = run(HEAD + "#SBATCH -p norm\n" + LAUNCH, boxes=bare).errors[0].message
    assert "the template (it has no box for --gres)" in gpu


def test_a_placeholder_relion_does_not_fill_is_named_as_such() -> None:
    result = run(HEAD + "#SBATCH -n 1 --qos=XXXqosXXX\nhostname\n")
    (change,) = result.changes
    assert change.rule == "unfilled-placeholder" and "not a placeholder RELION fills" in change.message
    assert "RELION_QSUB_EXTRA3 is not set" in run(HEAD + "#SBATCH --gres=XXXextra3XXX\nx\n").changes[0].message


def test_partly_empty_values_are_dropped_like_empty_ones() -> None:
    # Issue 15 class 5: --mem=XXXextra2XXXGB with the box cleared.
    result = run(HEAD + "#SBATCH -n 2 --mem=GB\n#SBATCH --gres=gpu: --time=:00:00\nhostname\n")
    assert result.script.render() == HEAD + "#SBATCH --ntasks=2\nhostname\n"
    assert [c.rule for c in result.changes] == ["partly-empty"] * 3
    assert run(HEAD + "#SBATCH --mem=4GB --gres=gpu:2,lscratch:5 -C 'a&b'\nx\n").changes == ()


def test_a_prose_comment_about_sbatch_is_no_ignored_directive() -> None:
    # Issue 15 class 7.
    text = HEAD + "# sbatch --mem=10g --partition=largemem myjob.sh\n#SBATCH -n 1\nhostname\n"
    assert run(text).changes == ()
    assert [c.rule for c in run(HEAD + "# SBATCH --mem=10g\n#sbatch -n 2\n  #SBATCH -c 2\nx\n").changes] == [
        "ignored-directive"
    ] * 3


def test_the_scratch_warning_comes_once_and_never_for_an_echo() -> None:
    text = HEAD + "#SBATCH -p norm\necho relion_refine --o x\nrelion_refine --o x\nrelion_refine --o y\n"
    assert [(c.rule, c.line) for c in run(text).changes] == [("scratch-missing", 4)]
    text = HEAD + "#SBATCH -p norm --gres=lscratch:5\necho `which relion_refine` --o x\n"
    assert run(text).script.render() == text


def test_repeated_options_other_than_gres_are_reported() -> None:
    # Issue 15 class 1: sbatch keeps only x2695.
    result = run(HEAD + "#SBATCH -p gpu\n#SBATCH -C gpup100\n#SBATCH -C x2695\nhostname\n")
    (change,) = result.changes
    assert (change.rule, change.action, change.line) == ("repeated-option", "warning", 4)
    assert "sbatch uses only the last, x2695" in change.message
    assert run(HEAD + "#SBATCH -n 2\n#SBATCH --ntasks=2\nx\n").changes == ()  # the same value twice
    assert run(HEAD + "#SBATCH -t 1:00\n#SBATCH -t 2:00\nx\n", cli=["--time=3:00"]).changes == ()


def test_other_batch_systems_are_refused_with_the_fix() -> None:
    # Issue 15 class 3: RELION's default qsub.csh, filled.
    csh = "#!/bin/tcsh\n#$ -pe openmpi 4\n#$ -e Class2D/job001/run.err\n#$ -cwd\n\nmpiexec -n 4  relion_x_mpi\n"
    (error,) = run(csh).errors
    assert "SGE (Grid Engine) (RELION's default qsub.csh), not Slurm" in error.message
    assert "RELION_QSUB_TEMPLATE" in error.message
    for head, system in (("#PBS -l nodes=2:ppn=4", "PBS/Torque"), ("#BSUB -n 8", "LSF")):
        (error,) = run("#!/bin/bash\n" + head + "\nmpirun x\n").errors
        assert f"a template for {system}, not Slurm" in error.message
    mixed = run(HEAD + "#SBATCH -n 1\n#$BATCH -e x\nhostname\n")
    assert mixed.ok and [(c.rule, c.action) for c in mixed.changes] == [("foreign-directive", "warning")]


@pytest.mark.parametrize(
    ("word", "expected"),
    [("OMP_NUM_THREADS=4", True), ("_X=", True), ("A1=b=c", True), ("1A=x", False), ("=x", False), ("srun", False),
     ("a-b=1", False), ("é=1", False)],
)  # fmt: skip
def test_environment_prefix_words(word: str, expected: bool) -> None:
    """The shell's NAME=value words before a launcher (what the regex [A-Za-z_]\\w*=\\S* matched)."""
    from relion_qsub.checks.placeholders import environment_prefix

    assert environment_prefix(word) is expected


def test_a_command_before_the_directive_block_is_one_finding_and_moved_below_it() -> None:
    # sbatch stops reading directives at the first line that is neither blank nor a comment (src/sbatch/opt.c,
    # _opt_batch_script); blank and comment lines before the #SBATCH lines do not.
    text = HEAD + "set -e\n\n# resources\n#SBATCH --ntasks=4\n#SBATCH --time=1:00:00\nsrun hostname\n"
    result = run(text)
    (change,) = result.changes
    assert (change.rule, change.action, change.line) == ("ignored-directive", "warning", 2)  # warn: repaired and said
    assert change.message.startswith(
        "`set -e` comes before the #SBATCH lines, so sbatch would ignore all 2 of them: moved it below the last "
        "#SBATCH line (line 6)"
    )
    assert (
        result.script.render()
        == HEAD + "\n# resources\n#SBATCH --ntasks=4\n#SBATCH --time=1:00:00\nset -e\nsrun hostname\n"
    )
    assert result.script.last("ntasks") == "4"
    error = dataclasses.replace(BIOWULF, policy={"ignored_directive": "error"})
    refused = run(text, site=error)
    assert [c.message for c in refused.errors] == [
        "`set -e` comes before the #SBATCH lines, so sbatch ignores all 2 of them: move it below the last #SBATCH "
        "line (line 6)"
    ]


def test_a_directive_after_the_job_s_own_commands_is_not_a_misplaced_block() -> None:
    result = run(HEAD + "#SBATCH -n 1\nsrun relion_refine --o x\n#SBATCH --time=1:00:00\n")
    assert [c.message.split(" is ")[1][:22] for c in result.changes if c.rule == "ignored-directive"] == [
        "after the first comman"
    ]


def test_a_space_after_a_comma_is_one_finding_naming_the_box() -> None:
    boxes = Boxes(["#!/bin/bash", "#SBATCH --gres=XXXextra3XXX -p gpu"], {3: "Gres"})
    result = run(HEAD + "#SBATCH --gres=lscratch:5, gpu:p100:4 -p gpu\n" + LAUNCH, boxes=boxes)
    typo = [c for c in result.changes if c.rule in ("typo", "partly-empty", "gpu-without-gres")]
    assert [(c.rule, c.action) for c in typo] == [("typo", "fixed")]
    assert typo[0].message.endswith("remove the space after the comma in the 'Gres' box (RELION_QSUB_EXTRA3)")
    assert result.script.last("gres") is not None and "gpu:p100:4" in result.script.last("gres")


def test_missing_chdir_is_refused_and_an_existing_one_is_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "exists").mkdir()
    assert run(HEAD + "#SBATCH -n 1 --chdir=exists\nhostname\n").changes == ()
    assert run(HEAD + f"#SBATCH -n 1 -D {tmp_path}\nhostname\n").changes == ()
    (error,) = run(HEAD + "#SBATCH -n 1 --chdir=CREATE_PWD\nhostname\n").errors
    assert error.rule == "missing-chdir" and error.line == 2
    assert error.message.startswith(f"--chdir=CREATE_PWD is no directory ({tmp_path}/CREATE_PWD does not exist)")
