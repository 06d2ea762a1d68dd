#!/bin/bash
#SBATCH --partition=XXXqueueXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --mem=XXXextra2XXXGB
#SBATCH --time=XXXextra1XXX:00:00
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX

srun --mem-per-cpu=XXXextra3XXX XXXcommandXXX
