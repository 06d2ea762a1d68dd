#!/bin/bash -l
#SBATCH -D ./
#SBATCH -J Relion
#SBATCH -C gpup100

#SBATCH --partition=XXXqueueXXX
#SBATCH --error=XXXerrfileXXX
#SBATCH --output=XXXoutfileXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --gres=gpu:2
#SBATCH --mem-per-cpu 2000 
#SBATCH --time=18:00:00
# Default is 3.2G, increase total RAM with e.g. --mem 80G

# TMP_SCRATCH=/scratch/users/$USER/$SLURM_JOB_ID
# mkdir -p $TMP_SCRATCH

module purge
spack load relion@4.0_beta
  
mpirun XXXcommandXXX

# rm -rf $TMP_SCRATCH
