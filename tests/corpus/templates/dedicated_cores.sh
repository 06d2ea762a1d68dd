#!/bin/bash
#SBATCH --partition=XXXqueueXXX
#SBATCH --nodes=XXXnodesXXX
#SBATCH --ntasks-per-node=XXXdedicatedXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX
#SBATCH --time=XXXextra1XXX

mpirun -np XXXmpinodesXXX XXXcommandXXX
