"""One exception hierarchy; each class carries the sysexits(3) code the CLI exits with.

Messages are one sentence that names the input and the fix. Causes are chained with ``raise ... from``
so that ``-v`` shows the whole story while the default output stays one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

# sysexits.h values; python's os.EX_* exist only on Unix and not on every build, so spell them out.
EX_OK = 0
EX_USAGE = 64  # command line usage error
EX_DATAERR = 65  # input data was incorrect (the script)
EX_NOINPUT = 66  # input file missing or unreadable
EX_UNAVAILABLE = 69  # a service (sbatch, slurmctld) is unavailable
EX_SOFTWARE = 70  # internal error: a bug in relion-qsub
EX_CANTCREAT = 73  # cannot create an output file
EX_IOERR = 74  # input/output error
EX_TEMPFAIL = 75  # temporary failure; the user may retry
EX_CONFIG = 78  # configuration error (the site profile)


class RelionQsubError(Exception):
    """Base of every error relion-qsub reports to a user."""

    exit_code: int = EX_SOFTWARE


class UsageError(RelionQsubError):
    exit_code = EX_USAGE


class ScriptError(RelionQsubError):
    """The submission script cannot be submitted as it is (and no rule can repair it)."""

    exit_code = EX_DATAERR


class InputError(RelionQsubError):
    exit_code = EX_NOINPUT


class ProfileError(RelionQsubError):
    """The site profile is malformed: names the file, the key and what is expected."""

    exit_code = EX_CONFIG


class CommandError(RelionQsubError):
    """An external command (sbatch, squeue, srun) failed or could not be run.

    Carries what a reader of the failure needs, always set (catch by type, never probe with getattr): the argv, its
    exit status (None when it did not run to an end: not found, timed out), and what it printed.
    """

    exit_code = EX_UNAVAILABLE

    def __init__(
        self,
        message: str,
        *,
        argv: tuple[str, ...] = (),
        returncode: int | None = None,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.argv, self.returncode, self.stdout, self.stderr = tuple(argv), returncode, stdout, stderr

    def again(self, message: str) -> CommandError:
        """The same failure (same class and facts) told with more context, e.g. which install step it was."""
        return type(self)(message, argv=self.argv, returncode=self.returncode, stdout=self.stdout, stderr=self.stderr)


class CommandTimeout(CommandError):
    """The command did not answer in time. For sbatch the job may nevertheless exist."""

    exit_code = EX_TEMPFAIL


class TransientError(CommandError):
    """A failure that is listed as retryable (controller timeouts and the like)."""

    exit_code = EX_TEMPFAIL


class LayoutError(RelionQsubError):
    """The job's Slurm environment does not describe a layout relion-launch can run."""

    exit_code = EX_DATAERR


def guarded(prog: str, verbose: bool, body: Callable[[], int]) -> int:
    """Run a command's body: user errors as one line with their sysexits code, bugs as one line (-v: traceback)."""
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
        return EX_OK
    except Exception as exc:  # a bug: one line by default, the traceback with -v
        if verbose:
            raise
        print(f"{prog}: internal error: {exc!r} (run with -v for the traceback)", file=sys.stderr)
        return EX_SOFTWARE
