#!/bin/bash -l
#SBATCH -D ./
#SBATCH -J Relion
#SBATCH -C x2695
#SBATCH --partition=XXXqueueXXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --mem-per-cpu 1000 
#SBATCH --time=24:00:00
# Default is 3.2G, increase total RAM with e.g. --mem 80G

module purge
load relion/4.0.0

mpirun XXXcommandXXX

