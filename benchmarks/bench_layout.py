"""Benchmark (not a test): relion-launch's layout step versus Biowulf's bash + `scontrol show hostnames`.

The layout step is: the job's Slurm environment in, the homogeneous+1 plan out, hostfile lines included
(relion_qsub.layout.plan_layout + hostfile_text, no subprocess: python-hostlist expands SLURM_JOB_NODELIST).
Shapes: 1,000 nodes x 5 tasks and 10,000 nodes x 5 tasks, SLURM_JOB_NODELIST compressed (cn[00001-10000]).

Compared with the seed's add_extra_MPI_task.sh (sourced by bash, which runs `scontrol show hostname` and appends
one line per rank to a mktemp file). scontrol needs a slurm.conf but not a running controller for `show
hostnames`: the testbed's SLURM_CONF is used when set, else a throwaway minimal one.

Targets (issue 5): faster than bash at 1,000 nodes; < 100 ms at 10,000 nodes. The process rows run the package as a
site installs it (benchmarks/installed.py), not through the editable developer venv's import hook.
Run: `.venv/bin/python benchmarks/bench_layout.py [N]` (N repetitions per row, default 15; medians shown).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from installed import site_install  # noqa: E402
from summary import figure  # noqa: E402

from relion_qsub.launch.layout import LayoutOptions, hostfile_text, plan_layout  # noqa: E402

# The seed's script (relion-on-biowulf.txt, "add_extra_MPI_task.sh"), verbatim but for `return` -> `exit`
# (it is run, not sourced, here) and printing the file name.
BASH = r"""
if [[ -z $SLURM_JOB_NODELIST ]]; then exit; fi
if [[ -z $SLURM_JOB_GPUS ]]; then exit; fi
if [[ -z $SLURM_NTASKS_PER_NODE ]]; then exit
elif [[ ${SLURM_NTASKS_PER_NODE} -lt 2 ]]; then exit
elif [[ $((SLURM_NTASKS_PER_NODE%2)) == 0 ]]; then exit
fi
array=( $( scontrol show hostname $SLURM_JOB_NODELIST) )
file=$(mktemp --suffix .SLURM_JOB_NODELIST)
if [[ ${#array[@]} -eq 1 ]]; then
  for ((j=0;j<$((SLURM_NTASKS_PER_NODE));j++)); do
    echo ${array[0]} >> $file
  done
else
  echo ${array[0]} > $file
  for ((i=0;i<${SLURM_JOB_NUM_NODES};i++)); do
    for ((j=0;j<$((SLURM_NTASKS_PER_NODE-1));j++)); do
      echo ${array[${i}]} >> $file
    done
  done
fi
export SLURM_HOSTFILE=$file
export SLURM_DISTRIBUTION=arbitrary
unset SLURM_NTASKS_PER_NODE
echo $file
"""

PYTHON_STEP = """
import os, sys
sys.path.insert(0, sys.argv[1])
from relion_qsub.launch.layout import LayoutOptions, hostfile_text, plan_layout
plan = plan_layout(os.environ, LayoutOptions(command=("relion_refine_mpi",), hostfile_path=sys.argv[2]))
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, hostfile_text(plan).encode())
os.close(fd)
"""


def job_env(nodes: int, per_node: int = 5) -> dict[str, str]:
    width = 5
    return {
        "SLURM_JOB_ID": "1",
        "SLURM_JOB_NODELIST": f"cn[{1:0{width}d}-{nodes:0{width}d}]",
        "SLURM_JOB_NUM_NODES": str(nodes),
        "SLURM_NTASKS": str(nodes * per_node),
        "SLURM_NTASKS_PER_NODE": str(per_node),
        "SLURM_TASKS_PER_NODE": f"{per_node}(x{nodes})",
        "SLURM_JOB_GPUS": "0,1,2,3",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3",
    }


def median_ms(fn: Callable[[], object], n: int) -> float:
    fn()  # warm-up: page cache, .pyc files
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


def slurm_conf(tmp: Path) -> tuple[str, str]:
    conf = os.environ.get("SLURM_CONF", "")
    if conf and os.path.exists(conf):
        return conf, "testbed SLURM_CONF"
    path = tmp / "slurm.conf"
    path.write_text(
        "ClusterName=bench\nSlurmctldHost=localhost(127.0.0.1)\nSlurmctldPort=1\nNodeName=cn1 CPUs=1\n"
        "PartitionName=p Nodes=cn1\n"
    )
    return str(path), "throwaway slurm.conf (no controller needed)"


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    rows: list[tuple[str, str, float | None, str]] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        # The process rows run relion-launch's package as a site runs it (benchmarks/installed.py).
        installed = site_install(tmp, "testbed")
        python = str(installed / "venv" / "bin" / "python")
        conf, conf_note = slurm_conf(tmp)
        have_scontrol = shutil.which("scontrol") is not None
        for nodes in (1_000, 10_000):
            shape = f"{nodes:,} nodes x 5"
            env = job_env(nodes)
            options = LayoutOptions(command=("relion_refine_mpi",), hostfile_path=str(tmp / "hostfile"))

            def in_process(env: dict[str, str] = env, options: LayoutOptions = options) -> str:
                return hostfile_text(plan_layout(env, options))

            lines = len(in_process().splitlines())
            assert lines == 1 + nodes * 4, lines
            rows.append((shape, "layout in-process (plan + hostfile text)", median_ms(in_process, n), f"{lines} lines"))

            proc_env = dict(os.environ, **env)
            hostfile = str(tmp / "hostfile")

            def python_process(proc_env: dict[str, str] = proc_env, hostfile: str = hostfile) -> None:
                argv = [python, "-s", "-c", PYTHON_STEP, str(installed), hostfile]
                subprocess.run(argv, env=proc_env, check=True)

            rows.append((shape, "python process (start + layout + write)", median_ms(python_process, n), ""))
            if not have_scontrol:
                rows.append((shape, "bash + scontrol show hostnames", None, "scontrol not installed"))
                continue
            bash_env = dict(proc_env, SLURM_CONF=conf, TMPDIR=str(tmp))

            def bash(bash_env: dict[str, str] = bash_env) -> None:
                out = subprocess.run(["bash", "-c", BASH], env=bash_env, capture_output=True, text=True, check=True)
                os.unlink(out.stdout.strip())

            check = subprocess.run(["bash", "-c", BASH], env=bash_env, capture_output=True, text=True, check=True)
            produced = Path(check.stdout.strip()).read_text()
            same = produced == in_process()
            os.unlink(check.stdout.strip())
            runs = n if nodes <= 1_000 else max(3, n // 5)
            rows.append((shape, "bash add_extra_MPI_task.sh + scontrol", median_ms(bash, runs), f"same file: {same}"))

    print(f"{'shape':18s} {'method':44s} {'median ms':>10s}  note   ({n} runs, {conf_note})")
    for shape, method, ms, note in rows:
        shown = f"{ms:10.1f}" if ms is not None else f"{'-':>10s}"
        print(f"{shape:18s} {method:44s} {shown}  {note}")
    by = {(s, m): ms for s, m, ms, _ in rows}
    inproc_10k = by[("10,000 nodes x 5", "layout in-process (plan + hostfile text)")]
    bash_1k = by.get(("1,000 nodes x 5", "bash add_extra_MPI_task.sh + scontrol"))
    proc_1k = by[("1,000 nodes x 5", "python process (start + layout + write)")]
    print()
    print(f"target < 100 ms at 10,000 nodes (in-process): {'met' if inproc_10k and inproc_10k < 100 else 'MISSED'}")
    if inproc_10k is not None:
        figure("layout", "layout in-process, 10,000 nodes x 5", inproc_10k, "ms", "< 100", inproc_10k < 100)
    if bash_1k is not None and proc_1k is not None:
        verdict = "met" if proc_1k < bash_1k else "MISSED"
        figure(
            "layout", "bash + scontrol / relion-launch, 1,000 nodes", bash_1k / proc_1k, "x", "> 1", proc_1k < bash_1k
        )
        print(f"target faster than bash at 1,000 nodes (whole process vs whole process): {verdict} "
              f"({bash_1k / proc_1k:.1f}x)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
