#!/bin/sh
# Thin wrapper: works from a git checkout or an installed prefix without activating a venv.
# HPC staff point a module's PATH at this directory. The package root is passed to Python as an argument,
# not through PYTHONPATH, because sbatch exports the submitting environment into the job (RELION's own Python
# tools, e.g. Topaz, must not inherit it).
# Interpreter: $RELION_QSUB_PYTHON, else the venv beside bin/ (.venv in a checkout, venv in a prefix), else python3.
# This runs on every RELION "Run" click: plain parameter expansion, no dirname/basename processes on the usual path.
self=$0
case $self in
    */*) here=${self%/*} ;;
    *) here=. ;;
esac
# A link from elsewhere (e.g. ~/bin/relion-qsub -> PREFIX/bin/relion-qsub) is followed; bin/relion-launch, a link
# beside its target, is not, so it runs even with an empty PATH (no readlink needed).
if [ -L "$self" ] && [ ! -d "$here/../relion_qsub" ]; then
    self=$(readlink -f -- "$self") || exit 70
    here=${self%/*}
fi
case $here in
    /*) ;;
    *) here=$(CDPATH= cd -- "$here" && pwd -P) || exit 70 ;;
esac
root=${here%/bin}
py=${RELION_QSUB_PYTHON:-}
if [ -z "$py" ]; then
    for candidate in "$root/venv/bin/python" "$root/.venv/bin/python"; do
        if [ -x "$candidate" ]; then py=$candidate; break; fi
    done
fi
: "${py:=python3}"
entry=${0##*/}
case $entry in
    relion-launch*) func=launch_program ;;
    *) func=qsub_program ;;
esac
# -s: ignore the user's site-packages (a stray ~/.local install must not shadow ours; also faster start-up).
# gc.disable() before any import: the program entries in cli.py turn the collector back on where a process lives long.
exec "$py" -s -c 'import gc; gc.disable(); import sys; sys.path.insert(0, sys.argv.pop(1)); sys.argv[0] = sys.argv.pop(1); import relion_qsub.cli as c; getattr(c, sys.argv.pop(1))()' \
    "$root" "$entry" "$func" "$@"
