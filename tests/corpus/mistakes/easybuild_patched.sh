#!/bin/bash
#SBATCH --job-name=XXXnameXXX
#SBATCH --partition=XXXqueueXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --account=XXXaccountXXX
#SBATCH --qos=XXXqosXXX
#SBATCH --time=XXXtimelimitXXX
#SBATCH --comment=XXXjobtypeXXX
#SBATCH XXXextrasbatchXXX
#SBATCH --output=XXXoutfileXXX
#SBATCH --error=XXXerrfileXXX

srun --mpi=pmix XXXcommandXXX
