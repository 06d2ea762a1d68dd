#!/bin/bash
#SBATCH -p XXXqueueXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH -C XXXextra1XXX
#SBATCH -C x2695
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX

srun XXXcommandXXX
