"""`relion-launch`: the RELION_STD_LAUNCHER inside the job (code that runs in the allocation, never at submission).

argv -> ``invocation`` (our options, srun's, RELION's command); the job's environment (``envfile`` for --env-file) ->
``layout`` (pure: ranks, nodes, GPUs) -> ``gpumap`` (pure: the GPU each rank of a RELION program will use, by
RELION's own mapping) -> ``plan`` (the hostfile and what run.out says) -> ``preflight`` (CPU, thread and scratch
checks, relion_python_* programs on PATH) -> ``supervise`` (srun -K1, signals, the first failed rank) -> ``main``.
It depends only on ``errors``, ``proc``, ``relion`` and ``slurm`` of the package (import-linter contract in
pyproject.toml).
"""
