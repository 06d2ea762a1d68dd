#!/bin/bash
# lscratch_mon.sh: log a Slurm job's local scratch use over time (site testbed).
# usage: lscratch_mon.sh [LOG [SECONDS [PID]]]   (default: scratch_usage.log, every 1 s, the parent)
# The generated RELION templates start it in the background with the job shell's pid ($$) and stop it when that
# shell exits (an EXIT trap); it also stops by itself within a second of PID being gone.
# Each line: ISO time, host, KiB used in the job's scratch directory, KiB free on its filesystem, the directory.
dir=${RELION_QSUB_SCRATCH:-/lscratch/$SLURM_JOB_ID}
log=${1:-scratch_usage.log}
interval=${2:-1}
watch=${3:-$PPID}
case $interval in '' | *[!0-9]* | 0) echo "lscratch_mon.sh: SECONDS must be a whole number > 0, got '$interval'" >&2; exit 64 ;; esac
case $watch in '' | *[!0-9]*) echo "lscratch_mon.sh: PID must be a process id, got '$watch'" >&2; exit 64 ;; esac
echo "# time host used_kib free_kib dir (lscratch_mon.sh, every ${interval} s)" >> "$log"
sample() {
    used=$(du -sk "$dir" 2>/dev/null | cut -f1)
    free=$(df -Pk "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
    echo "$(date +%Y-%m-%dT%H:%M:%S) $(hostname -s) ${used:-0} ${free:-unknown} $dir" >> "$log"
}
nap=
trap '[ -n "$nap" ] && kill "$nap" 2>/dev/null; sample; exit 0' TERM INT HUP
waited=$interval
while kill -0 "$watch" 2>/dev/null; do
    if [ "$waited" -ge "$interval" ]; then
        sample
        waited=0
    fi
    sleep 1 &
    nap=$!
    wait "$nap"
    nap=
    waited=$((waited + 1))
done
sample
