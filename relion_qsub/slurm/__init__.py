"""The one home of Slurm facts: job states and what they mean (``states``), one client for what scontrol, squeue,
sacct and sbatch print (``client``), and the sbatch and srun option tables (``options``).

A leaf: it imports only ``relion_qsub.proc`` and ``relion_qsub.errors``. Nothing is imported here, so that
``relion-qsub check`` (which needs ``options`` alone) pays for nothing else.
"""
