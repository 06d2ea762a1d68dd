"""`relion-qsub report`: what each RELION job really used, against what it asked, and what to ask next time.

``sacct`` (the one sacct call: argv and parsing), ``jobs`` (the job dirs: relion-qsub.jsonl, exit files, the
normalised script, the scratch monitor's log), ``figures`` (per-job figures), ``verdict`` (one sentence from the site
profile's limits and recommend's rules), ``summary`` (the project), ``render`` (table and JSON), ``main``. Off the
submit path.
"""
