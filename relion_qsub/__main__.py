import sys

from .cli import qsub_main

sys.exit(qsub_main())
