"""Command-line edges of relion-qsub and relion-launch.

Only argument handling and error reporting live here; each subcommand imports its module lazily so that the
submit path pays for nothing it does not use. Errors print as one line (``relion-qsub: error: ...``) and exit with
the sysexits code of their class; ``-v`` adds the traceback with the chained causes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

from .errors import EX_SOFTWARE, RelionQsubError


def _guarded(prog: str, verbose: bool, body: Callable[[], int]) -> int:
    try:
        return body()
    except RelionQsubError as exc:
        if verbose:
            import traceback

            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug: say so in one line, keep the traceback for -v
        if verbose:
            raise
        print(f"{prog}: internal error: {exc!r} (run with -v for the traceback)", file=sys.stderr)
        return EX_SOFTWARE


def qsub_main(argv: Sequence[str] | None = None) -> int:
    from .qsub_cli import main

    return main(list(sys.argv[1:] if argv is None else argv))


def launch_main(argv: Sequence[str] | None = None) -> int:
    from .launch import main

    return main(list(sys.argv[1:] if argv is None else argv))
