"""Which findings a correct job's user is spared (issue 14: quiet by default on a correct job).

Our own templates carry one ``#SBATCH XXXextraNXXX`` line per SBATCH Directives box: a box left empty gives a bare
``#SBATCH``, which sbatch ignores (src/sbatch/opt.c reads no option from it). relion-qsub drops it so the script says
only what it means; nothing was wrong, so that repair is not echoed into run.out or onto the terminal. It stays in
relion-qsub.jsonl and ``-v`` prints it. (An empty ``--gres=`` is different: sbatch refuses it, so its repair is
reported.) Import-light: no module of the package.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: importing typing costs the submit path ~2 ms
if TYPE_CHECKING:
    from .checks.core import Change

# The one message of that repair (relion_qsub.checks.placeholders.empty_directives writes it).
BARE_DIRECTIVE = "dropped an empty '#SBATCH' line (the GUI field was left empty)"


def harmless(change: Change) -> bool:
    return change.action == "fixed" and change.message == BARE_DIRECTIVE
