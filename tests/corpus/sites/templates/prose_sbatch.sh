#!/bin/bash
#
# Example sbatch submit command using the largemem partition (the other parameters come from the RELION GUI):
#
# sbatch --mem=1009g --partition=largemem
#
#SBATCH --partition=XXXqueueXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX

srun XXXcommandXXX
