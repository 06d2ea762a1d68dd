#!/bin/bash
#SBATCH --nodes=1
#SBATCH --time=1:00:00
#SBATCH --job-name=relion
#$BATCH -e XXXerrfileXXX
#$BATCH -o XXXoutfileXXX
#$BATCH -l dedicated=XXXdedicatedXXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --partition=multinode
#SBATCH --exclusive

export PATH=$PATH:/work/software/relion/build/bin

XXXcommandXXX

mv benchout.json XXXnameXXXbenchout.json
