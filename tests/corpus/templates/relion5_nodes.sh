#!/bin/bash
#SBATCH --job-name=XXXnameXXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --nodes=XXXnodesXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --time=XXXextra1XXX
#SBATCH --mem-per-cpu=XXXextra2XXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX

echo "XXXcoresXXX cores for XXXnameXXX on $SLURM_JOB_NODELIST"
srun --mpi=pmix XXXcommandXXX
