#!/bin/tcsh
#$ -pe XXXqueueXXX XXXmpinodesXXX
#$ -e XXXerrfileXXX
#$ -o XXXoutfileXXX
#$ -cwd

mpiexec -n XXXmpinodesXXX  XXXcommandXXX
