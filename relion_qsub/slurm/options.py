"""The sbatch and srun option tables and a getopt_long-faithful option parser.

sbatch parses every ``#SBATCH`` line with getopt_long(3) over the same table as its command line
(src/sbatch/opt.c, src/common/slurm_opt.c), so this module mirrors getopt_long rather than argparse:
  * a long option matches exactly, or by an unambiguous prefix (``--part=gpu`` is ``--partition``);
  * a required argument is attached (``--time=1:00``) or the next word (``--time 1:00``);
  * an optional argument is only ever attached (``--exclusive=user``; ``--exclusive user`` is an error);
  * short options cluster (``-HQ``) and take attached or next-word arguments (``-N2``, ``-N 2``).
Options are identified by name after this lookup, never by substring matching of the raw text.

The sbatch table is sbatch(1) of Slurm 22.05; ``tests/test_qsub_cluster.py`` checks every entry against the real
sbatch. The srun table is srun(1) of Slurm 22.05 (src/srun/libsrun/opt.c), less ``-n/--ntasks``, ``-v/--verbose`` and
``-h/--help``, which relion-launch reads itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple


class Arg(enum.IntEnum):
    """What an option takes: getopt_long's has_arg (no_argument, required_argument, optional_argument)."""

    NONE = 0
    REQUIRED = 1
    OPTIONAL = 2


NONE, REQUIRED, OPTIONAL = Arg.NONE, Arg.REQUIRED, Arg.OPTIONAL


class Option(NamedTuple):
    name: str
    short: str | None
    arg: Arg


OPTIONS: tuple[Option, ...] = (
    Option("account", "A", REQUIRED),
    Option("acctg-freq", None, REQUIRED),
    Option("array", "a", REQUIRED),
    Option("batch", None, REQUIRED),
    Option("bb", None, REQUIRED),
    Option("bbf", None, REQUIRED),
    Option("begin", "b", REQUIRED),
    Option("chdir", "D", REQUIRED),
    Option("cluster-constraint", None, REQUIRED),
    Option("clusters", "M", REQUIRED),
    Option("comment", None, REQUIRED),
    Option("constraint", "C", REQUIRED),
    Option("container", None, REQUIRED),
    Option("contiguous", None, NONE),
    Option("core-spec", "S", REQUIRED),
    Option("cores-per-socket", None, REQUIRED),
    Option("cpu-freq", None, REQUIRED),
    Option("cpus-per-gpu", None, REQUIRED),
    Option("cpus-per-task", "c", REQUIRED),
    Option("deadline", None, REQUIRED),
    Option("delay-boot", None, REQUIRED),
    Option("dependency", "d", REQUIRED),
    Option("distribution", "m", REQUIRED),
    Option("error", "e", REQUIRED),
    Option("exclude", "x", REQUIRED),
    Option("exclusive", None, OPTIONAL),
    Option("export", None, REQUIRED),
    Option("export-file", None, REQUIRED),
    Option("extra-node-info", "B", REQUIRED),
    Option("get-user-env", None, OPTIONAL),
    Option("gid", None, REQUIRED),
    Option("gpu-bind", None, REQUIRED),
    Option("gpu-freq", None, REQUIRED),
    Option("gpus", "G", REQUIRED),
    Option("gpus-per-node", None, REQUIRED),
    Option("gpus-per-socket", None, REQUIRED),
    Option("gpus-per-task", None, REQUIRED),
    Option("gres", None, REQUIRED),
    Option("gres-flags", None, REQUIRED),
    Option("help", "h", NONE),
    Option("hint", None, REQUIRED),
    Option("hold", "H", NONE),
    Option("ignore-pbs", None, NONE),
    Option("input", "i", REQUIRED),
    Option("job-name", "J", REQUIRED),
    Option("kill-on-invalid-dep", None, REQUIRED),
    Option("licenses", "L", REQUIRED),
    Option("mail-type", None, REQUIRED),
    Option("mail-user", None, REQUIRED),
    Option("mcs-label", None, REQUIRED),
    Option("mem", None, REQUIRED),
    Option("mem-bind", None, REQUIRED),
    Option("mem-per-cpu", None, REQUIRED),
    Option("mem-per-gpu", None, REQUIRED),
    Option("mincpus", None, REQUIRED),
    Option("network", None, REQUIRED),
    Option("nice", None, OPTIONAL),
    Option("no-kill", "k", OPTIONAL),
    Option("no-requeue", None, NONE),
    Option("nodefile", "F", REQUIRED),
    Option("nodelist", "w", REQUIRED),
    Option("nodes", "N", REQUIRED),
    Option("ntasks", "n", REQUIRED),
    Option("ntasks-per-core", None, REQUIRED),
    Option("ntasks-per-gpu", None, REQUIRED),
    Option("ntasks-per-node", None, REQUIRED),
    Option("ntasks-per-socket", None, REQUIRED),
    Option("open-mode", None, REQUIRED),
    Option("output", "o", REQUIRED),
    Option("overcommit", "O", NONE),
    Option("oversubscribe", "s", NONE),
    Option("parsable", None, NONE),
    Option("partition", "p", REQUIRED),
    Option("power", None, REQUIRED),
    Option("prefer", None, REQUIRED),
    Option("priority", None, REQUIRED),
    Option("profile", None, REQUIRED),
    Option("propagate", None, OPTIONAL),
    Option("qos", "q", REQUIRED),
    Option("quiet", "Q", NONE),
    Option("reboot", None, NONE),
    Option("requeue", None, NONE),
    Option("reservation", None, REQUIRED),
    Option("signal", None, REQUIRED),
    Option("sockets-per-node", None, REQUIRED),
    Option("spread-job", None, NONE),
    Option("switches", None, REQUIRED),
    Option("test-only", None, NONE),
    Option("thread-spec", None, REQUIRED),
    Option("threads-per-core", None, REQUIRED),
    Option("time", "t", REQUIRED),
    Option("time-min", None, REQUIRED),
    Option("tmp", None, REQUIRED),
    Option("uid", None, REQUIRED),
    Option("usage", None, NONE),
    Option("use-min-nodes", None, NONE),
    Option("verbose", "v", NONE),
    Option("version", "V", NONE),
    Option("wait", "W", NONE),
    Option("wait-all-nodes", None, REQUIRED),
    Option("wckey", None, REQUIRED),
    Option("wrap", None, REQUIRED),
)


class Table(NamedTuple):
    """One command's options, by long name (aliases included) and by short letter."""

    canonical: dict[str, Option]  # without the aliases: what a typo is corrected to
    by_name: dict[str, Option]
    by_short: dict[str, Option]

    @classmethod
    def of(cls, options: Iterable[Option], aliases: Mapping[str, str] | None = None) -> Table:
        names = {o.name: o for o in options}
        by_name = {**names, **{alias: names[name] for alias, name in (aliases or {}).items()}}
        return cls(names, by_name, {o.short: o for o in names.values() if o.short})

    def arg(self, name: str) -> int | None:
        """What the long option ``name`` (exactly that name) takes; None when the command has no such option."""
        option = self.by_name.get(name)
        return option.arg if option is not None else None

    def short_arg(self, letter: str) -> int | None:
        """What the short option ``letter`` takes; None when the command has no such option."""
        option = self.by_short.get(letter)
        return option.arg if option is not None else None


# Long names sbatch accepts besides the table's (slurm_opt.c); they resolve to the canonical option.
ALIASES: dict[str, str] = {"tasks-per-node": "ntasks-per-node"}
SBATCH = Table.of(OPTIONS, ALIASES)
BY_NAME: dict[str, Option] = SBATCH.canonical
BY_SHORT: dict[str, Option] = SBATCH.by_short


def _srun(names: str, arg: Arg, shorts: Mapping[str, str] | None = None) -> tuple[Option, ...]:
    letters = {name: letter for letter, name in (shorts or {}).items()}
    return tuple(Option(name, letters.get(name), arg) for name in names.split())


# srun(1) of Slurm 22.05: long options, their short letters, and whether they take an argument. An optional argument
# is only ever attached (--exclusive=user), as getopt_long does.
SRUN_OPTIONS: tuple[Option, ...] = (
    *_srun(
        "accel-bind account acctg-freq bb bbf bcast-exclude begin chdir cluster-constraint clusters "
        "comment constraint container core-spec cores-per-socket cpu-bind cpu-freq cpus-per-gpu "
        "cpus-per-task deadline delay-boot dependency distribution epilog error exclude export "
        "extra-node-info gid gpu-bind gpu-freq gpus gpus-per-node gpus-per-socket gpus-per-task gres "
        "gres-flags het-group hint input job-name jobid "
        "licenses mail-type mail-user mcs-label mem mem-bind mem-per-cpu mem-per-gpu mincpus mpi msg-timeout "
        "network nodefile nodelist nodes ntasks-per-core ntasks-per-gpu ntasks-per-node ntasks-per-socket "
        "open-mode output partition power prefer priority profile prolog qos relative reservation signal "
        "slurmd-debug sockets-per-node switches task-epilog task-prolog thread-spec threads threads-per-core "
        "time time-min tmp uid wait wckey",
        REQUIRED,
        {
            "A": "account",
            "b": "begin",
            "D": "chdir",
            "M": "clusters",
            "C": "constraint",
            "S": "core-spec",
            "d": "dependency",
            "m": "distribution",
            "e": "error",
            "x": "exclude",
            "B": "extra-node-info",
            "G": "gpus",
            "i": "input",
            "J": "job-name",
            "L": "licenses",
            "F": "nodefile",
            "w": "nodelist",
            "N": "nodes",
            "o": "output",
            "p": "partition",
            "q": "qos",
            "r": "relative",
            "T": "threads",
            "t": "time",
            "W": "wait",
            "c": "cpus-per-task",
        },
    ),
    *_srun(
        "bcast compress exclusive immediate kill-on-bad-exit nice no-kill propagate resv-ports send-libs x11",
        OPTIONAL,
        {"I": "immediate", "K": "kill-on-bad-exit", "k": "no-kill"},
    ),
    *_srun(
        "contiguous disable-status exact hold label multi-prog no-allocate overcommit overlap oversubscribe "
        "preserve-env pty quiet quit-on-interrupt reboot spread-job test-only unbuffered usage "
        "use-min-nodes version",
        NONE,
        {
            "X": "disable-status",
            "H": "hold",
            "l": "label",
            "Z": "no-allocate",
            "O": "overcommit",
            "s": "oversubscribe",
            "E": "preserve-env",
            "Q": "quiet",
            "u": "unbuffered",
            "V": "version",
        },
    ),
)
SRUN = Table.of(SRUN_OPTIONS)
# srun's own step size as a template's command line gives it (``srun -n 4``, ``--ntasks=4``): the table above plus
# ``-n/--ntasks`` (relion-launch reads those itself, so SRUN lacks them).
SRUN_STEP = Table.of((*SRUN_OPTIONS, Option("ntasks", "n", REQUIRED)))


EXACT, PREFIX, AMBIGUOUS, UNKNOWN = "exact", "prefix", "ambiguous", "unknown"
MAX_NAME = 2 * max(len(name) for name in BY_NAME)  # longer words are no slip of the keyboard


ARG_KINDS = {"none": NONE, "required": REQUIRED, "optional": OPTIONAL}


def site_table(site_options: Mapping[str, str]) -> dict[str, Option]:
    """The site's plugin options (SPANK: ``--gpu_cmode``, ``--auks``), name -> "none"/"required"/"optional".

    A SPANK plugin adds its options to sbatch's own getopt_long table, so they are parsed, prefix-matched and
    repeated exactly like the stock ones; here they join the table for one parse.
    """
    return {name: Option(name, None, ARG_KINDS[kind]) for name, kind in site_options.items()}


def lookup_long(
    name: str, extra: Mapping[str, Option] | None = None, command: Table = SBATCH
) -> tuple[str, tuple[Option, ...]]:
    """Resolve a long option name (without ``--``) the way getopt_long does over ``command``'s table (``extra``: the
    site's options)."""
    table = {**command.by_name, **extra} if extra else command.by_name
    exact = table.get(name)
    if exact is not None:
        return EXACT, (exact,)
    matches = tuple({o.name: o for n, o in table.items() if n.startswith(name)}.values()) if name else ()
    if len(matches) == 1:
        return PREFIX, matches
    if matches:
        return AMBIGUOUS, matches
    return UNKNOWN, ()


def edit_distance(a: str, b: str) -> int:
    """Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps cost 1."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


def clip(text: str, limit: int = 60) -> str:
    """``text`` shortened for a one-line message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nearest(name: str, limit: int = 3, names: Iterable[str] | None = None) -> list[tuple[int, str]]:
    """The option names closest to ``name``, as (distance, name), closest first, at most ``limit``.

    Nothing for names far longer than any option: the distance is quadratic, and a hostile 100 kB "option" must not
    turn a submission into seconds of arithmetic.
    """
    if len(name) > MAX_NAME:
        return []
    pool = names if names is not None else BY_NAME
    ranked = sorted((edit_distance(name, candidate), candidate) for candidate in pool)
    return ranked[:limit]


def unique_correction(name: str, max_distance: int, command: Table = SBATCH) -> Option | None:
    """The one option within ``max_distance`` edits of ``name``, or None if there are none or several."""
    names = command.canonical
    close = [candidate for distance, candidate in nearest(name, limit=3, names=names) if distance <= max_distance]
    return names[close[0]] if len(close) == 1 else None


class Parsed(NamedTuple):
    """One option as written in a directive.

    ``option`` is None when sbatch would reject the word: an unknown or ambiguous option, or a stray
    non-option word. ``spelled`` keeps the user's text (``--exlusive``, ``-N``, ``--part``) for messages.
    """

    spelled: str
    option: Option | None
    value: str | None = None
    problem: str | None = None  # why sbatch would reject it (None when it is fine)
    guess: Option | None = None  # for an unknown option: the unique near option, if any

    @property
    def name(self) -> str | None:
        return self.option.name if self.option else None


def _parse_long(
    word: str, rest: list[str], max_distance: int, extra: Mapping[str, Option] | None, command: Table
) -> Parsed:
    body = word[2:]
    name, eq, attached = body.partition("=")
    value = attached if eq else None
    word = "--" + name
    kind, matches = lookup_long(name, extra, command)
    if kind == AMBIGUOUS:
        shown = ", ".join("--" + o.name for o in matches[:4])
        return Parsed(word, None, value, f"option '--{name}' is ambiguous (could be {shown})")
    if kind == UNKNOWN:
        guess = unique_correction(name, max_distance, command)
        # A misspelt option that takes an argument swallows the next word as getopt would have, had it been
        # spelt right; otherwise "--constrain x2695" would leave "x2695" behind as a stray word.
        if guess is not None and value is None and guess.arg is REQUIRED and rest and not rest[0].startswith("-"):
            value = rest.pop(0)
        return Parsed(word, None, value, f"unrecognized option '--{clip(name)}'", guess)
    option = matches[0]
    if option.arg is NONE and value is not None:
        return Parsed(word, option, value, f"option '--{option.name}' doesn't allow an argument")
    if option.arg is REQUIRED and value is None:
        if not rest:
            return Parsed(word, option, None, f"option '--{option.name}' requires an argument")
        value = rest.pop(0)
    return Parsed(word, option, value)


def _parse_short_cluster(word: str, rest: list[str], command: Table) -> list[Parsed]:
    out: list[Parsed] = []
    i = 1
    while i < len(word):
        letter = word[i]
        option = command.by_short.get(letter)
        if option is None:
            out.append(Parsed("-" + letter, None, None, f"invalid option -- '{letter}'"))
            i += 1
            continue
        tail = word[i + 1 :]
        if option.arg is NONE:
            out.append(Parsed("-" + letter, option))
            i += 1
            continue
        if tail:
            out.append(Parsed("-" + letter, option, tail))
        elif option.arg is REQUIRED:
            if rest:
                out.append(Parsed("-" + letter, option, rest.pop(0)))
            else:
                out.append(Parsed("-" + letter, option, None, f"option requires an argument -- '{letter}'"))
        else:
            out.append(Parsed("-" + letter, option))
        break
    return out


def parse_words(
    words: Sequence[str],
    max_distance: int = 2,
    extra: Mapping[str, Option] | None = None,
    command: Table = SBATCH,
) -> list[Parsed]:
    """Parse the words of one directive line (or a command line) into options, in order (``extra``: site options;
    ``command``: whose table, sbatch's unless said). A word that is not an option is a problem, as in a directive."""
    rest = list(words)
    out: list[Parsed] = []
    while rest:
        word = rest.pop(0)
        if word == "--":
            out.extend(Parsed(w, None, None, f"Invalid directive found in batch script: {clip(w)}") for w in rest)
            break
        if word.startswith("--"):
            out.append(_parse_long(word, rest, max_distance, extra, command))
        elif word.startswith("-") and word != "-":
            out.extend(_parse_short_cluster(word, rest, command))
        else:
            out.append(Parsed(word, None, None, f"Invalid directive found in batch script: {clip(word)}"))
    return out


def _stray(parsed: Parsed) -> bool:
    return parsed.option is None and parsed.value is None and not parsed.spelled.startswith("-")


def comma_runs(options: Sequence[Parsed]) -> dict[int, list[Parsed]]:
    """Values that a space after a comma cut in two (``--gres=lscratch:5, gpu:p100:4``): position of the option
    whose value ends in "," -> the words that continue it. sbatch splits a directive at blanks like a shell
    (_get_argument in src/sbatch/opt.c), so the word after the space is no option and sbatch refuses the script
    ("Invalid directive found in batch script: gpu:p100:4"; checked against the real sbatch)."""
    out: dict[int, list[Parsed]] = {}
    i = 0
    while i < len(options):
        value = options[i].value
        words: list[Parsed] = []
        if options[i].option is not None and value and value.endswith(","):
            j = i + 1
            while j < len(options) and _stray(options[j]) and (not words or words[-1].spelled.endswith(",")):
                words.append(options[j])
                j += 1
        if words:
            out[i] = words
            i += len(words)
        i += 1
    return out


def index_of(options: Sequence[Parsed], parsed: Parsed) -> int:
    """Where ``parsed`` (this very object) stands among ``options``."""
    return next(k for k, o in enumerate(options) if o is parsed)
