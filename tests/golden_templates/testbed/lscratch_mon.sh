#!/bin/bash
# lscratch_mon.sh: log a Slurm job's local scratch use over time (site testbed).
# usage: lscratch_mon.sh [LOG [SECONDS]]   (default: scratch_usage.log, every 1 s)
# The generated RELION templates start it in the background; it stops when the job script that started it ends.
# Each line: ISO time, host, KiB used in the job's scratch directory, KiB free on its filesystem, the directory.
dir=${RELION_QSUB_SCRATCH:-/lscratch/$SLURM_JOB_ID}
log=${1:-scratch_usage.log}
interval=${2:-1}
parent=$PPID
echo "# time host used_kib free_kib dir (lscratch_mon.sh, every ${interval} s)" >> "$log"
sample() {
    used=$(du -sk "$dir" 2>/dev/null | cut -f1)
    free=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
    echo "$(date +%Y-%m-%dT%H:%M:%S) $(hostname -s) ${used:-0} ${free:-unknown} $dir" >> "$log"
}
trap 'sample; exit 0' TERM INT
while kill -0 "$parent" 2>/dev/null; do
    sample
    sleep "$interval" &
    wait $!
done
sample
