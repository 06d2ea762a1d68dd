"""The ``[policy]`` table's form: each check's action is one of :data:`ACTIONS`.

Which checks exist, and the action each takes by default, belong to the checks themselves (``relion_qsub.rules``
and ``relion_qsub.fit`` today, the rule registry ``relion_qsub.checks`` next). Until that registry owns them, the
defaults are written here, once: :func:`relion_qsub.profile.load` takes them as its ``policy`` argument (the hook
through which the registry passes its own), so nothing in this package needs to know a check by name.
"""

from __future__ import annotations

# What a check does when it fires: refuse the script, warn and submit, repair it, or nothing.
ACTIONS = ("error", "warn", "fix", "off")

DEFAULT_POLICY: dict[str, str] = {
    "empty_directive": "fix",
    "partly_empty": "fix",  # --mem=GB from --mem=XXXextra2XXXGB with the box cleared: dropped like --mem=
    "unfilled_placeholder": "warn",  # a directive with RELION's XXX...XXX left in: dropped with a warning
    "body_placeholder": "error",  # a command with XXX...XXX left in cannot run
    "launcher_options": "fix",  # an empty --opt= after the launcher in the body
    "typo": "fix",
    "memory_conflict": "fix",
    "duplicate_gres": "fix",
    "repeated_option": "warn",  # -C a ... -C b: sbatch keeps b; which one was meant is the user's call
    "scratch_inject": "fix",
    "scratch_gres": "fix",
    "scratch_job_id": "warn",
    "scratch_missing": "warn",
    "scratch_preread": "warn",
    "ntasks_mismatch": "error",
    "tasks_per_gpu": "warn",
    "threads_per_gpu": "error",
    "plus_one_launcher": "warn",
    "gpu_partition": "error",
    "gpu_without_gres": "error",
    "unknown_partition": "warn",
    "ignored_directive": "warn",
    "foreign_scheduler": "error",  # no #SBATCH, another batch system's directives: sbatch would run it on 1 CPU
    "foreign_directive": "warn",  # a stray #$/#PBS/#BSUB line in a Slurm script
}
# relion_qsub/fit.py: the job against the partition limits of [partitions.*], after the rules above (each key's
# per-key test is in tests/test_fit.py).
FIT_POLICY: dict[str, str] = {
    "max_time": "error",
    "partition_nodes": "error",
    "node_cpus": "error",
    "node_memory": "error",
    "memory_unit": "error",
    "node_scratch": "error",
    "unknown_feature": "error",
    "gpu_default_partition": "error",
    "template_size": "error",
}
ALL_POLICY = {**DEFAULT_POLICY, **FIT_POLICY}
