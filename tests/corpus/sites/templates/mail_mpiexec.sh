#!/bin/bash
#SBATCH --mail-user=user@example.org
#SBATCH --mail-type=end,fail
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --time=XXXextra1XXX
#SBATCH --mem-per-cpu=XXXextra2XXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX

module load relion/1.4

mpiexec XXXcommandXXX
####the end
