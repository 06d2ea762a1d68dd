#!/bin/bash
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
##### --exclusive
#SBATCH --constraint=x2695
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX

export PATH=/home/user/relion/build/bin:$PATH

mpirun time XXXcommandXXX
