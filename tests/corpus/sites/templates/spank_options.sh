#!/bin/bash
#SBATCH --partition=XXXqueueXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --gres=gpu:p100:XXXextra1XXX
#SBATCH --gpu_cmode=shared
#SBATCH --auks=yes
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX

srun XXXcommandXXX
