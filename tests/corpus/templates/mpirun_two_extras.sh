#!/bin/bash
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX
#SBATCH --gres=gpu:XXXextra1XXX
#SBATCH --mem=XXXextra2XXX

module load relion/4.0
mpirun XXXcommandXXX
