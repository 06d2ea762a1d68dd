#!/bin/bash --norc 
# Standard output and error:
#SBATCH -e XXXerrfileXXX
#SBATCH -o XXXoutfileXXX
# Initial working directory:
#SBATCH -D ./
# Job Name:
#SBATCH -J Relion
# Queue (Partition):
#SBATCH --partition=XXXextra3XXX
# Number of nodes and MPI tasks per node:
#SBATCH --nodes=XXXextra1XXX
#SBATCH --ntasks=XXXmpinodesXXX
#SBATCH --ntasks-per-node=XXXextra2XXX
#SBATCH --cpus-per-task=XXXthreadsXXX
#SBATCH --gres=gpu:XXXextra4XXX
#
#SBATCH --mail-type=none
#SBATCH --mem XXXextra5XXX
#
# Wall clock limit:
#SBATCH --time=168:00:00

module purge
module load RELION/5.0-beta-2
module list
echo "submitting relion"

srun XXXcommandXXX

echo "done"

