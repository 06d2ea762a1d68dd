"""relion-qsub: RELION's queue-submission layer for Slurm.

Two commands share this package:
  relion-qsub   the "Queue submit command": parse, normalise and sbatch RELION's filled script;
  relion-launch the RELION_STD_LAUNCHER inside the job: lay out MPI ranks (RELION maps the GPUs), srun -K1.

Keep this module import-free: it is on the submit path, where every millisecond of start-up counts.
"""

__version__ = "0.1.0"
