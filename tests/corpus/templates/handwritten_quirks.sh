#!/bin/bash
#
# Hand-written Slurm template for RELION (the lab wiki copy)
#SBATCH --job-name="relion XXXnameXXX"        # quoted, with a space
#SBATCH --ntasks=XXXmpinodesXXX --cpus-per-task=XXXthreadsXXX   # two options on one line
#SBATCH -p XXXqueueXXX -t XXXextra1XXX
#SBATCH --mem-per-cpu='XXXextra2XXX'
#SBATCH --gres=XXXextra3XXX	# a tab before this comment
#SBATCH--exclusive
#SBATCH  --open-mode=append
#SBATCH --error=XXXerrfileXXX --output=XXXoutfileXXX
##SBATCH --mail-type=ALL      (disabled: two hashes)
# SBATCH --constraint=x2680   (not a directive: a space after the hash)
#SBATCH XXXextra4XXX

module load RELION
#SBATCH --comment=too-late    (after the first command: sbatch ignores it)
srun --mpi=pmix XXXcommandXXX
