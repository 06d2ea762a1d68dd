"""RELION's facts, each written once: the job-dir contract (``jobdir``), relion-qsub's submission record beside it
(``record``), the ``job.star`` RELION writes for every job (``jobstar``), the Running tab's placeholders and boxes
(``gui``), and the job types with the names users give them (``jobtypes``).

A leaf package (import-linter contract in pyproject.toml): it imports only ``errors`` and ``fsio`` of the package, so
the submit path, relion-launch inside the job, doctor and report all stand on it. Importing it imports no module.
"""
