#!/bin/bash -l
 
#BSUB -P cryoem                          # project code
#BSUB -J XXXnameXXX                      # job name
#BSUB -q XXXqueueXXX                     # queue
#BSUB -n XXXmpinodesXXX                  # slots
#BSUB -R "span[hosts=1]"                 # one host
#BSUB -W XXXextra1XXX                    # wall clock hh:mm
#BSUB -e XXXerrfileXXX
#BSUB -o XXXoutfileXXX
 
module load relion/3.0
export TMPDIR=/scratch/${USER}/${LSB_JOBID}/TMPDIR/

mpirun XXXcommandXXX 
