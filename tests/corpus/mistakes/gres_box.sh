#!/bin/bash
#SBATCH --job-name=XXXnameXXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --time=1:00:00
#SBATCH --gres=XXXextra1XXX
#SBATCH --output=XXXoutfileXXX
#SBATCH --error=XXXerrfileXXX

srun --mpi=pmix XXXcommandXXX
