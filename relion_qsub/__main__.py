from .cli import qsub_program

qsub_program()
