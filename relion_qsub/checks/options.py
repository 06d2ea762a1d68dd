"""The directives themselves: lines sbatch ignores, other batch systems', unknown options, and options given twice
or in pairs Slurm refuses."""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..relion import gui
from ..script import MAGIC, Kind, Line, Script, foreign_directives, lookalikes, shell_words, split_words
from ..slurm.options import NONE, Parsed, clip, comma_runs, index_of, nearest, parse_words, site_table
from .core import Context, Gres, Report, effective, implements, new_option, profile_box, rewrite

MEMORY = ("mem", "mem-per-cpu", "mem-per-gpu")


def _is_command(line: Line) -> bool:
    """A line that ends sbatch's directive block: neither blank nor a ``#`` line (src/sbatch/opt.c,
    _opt_batch_script: "Stop parsing script if not a comment")."""
    return line.kind == Kind.BODY and bool(line.text.strip()) and not line.text.lstrip().startswith("#")


def _runs_the_job(text: str, launchers: Sequence[str]) -> bool:
    """A command line that starts a RELION program or a launcher (``srun``, ``${RELION_STD_LAUNCHER}``)."""
    words = [word.strip("\"'`") for _, _, word in shell_words(text)]
    names = [word[2:-1] if word.startswith("${") and word.endswith("}") else word.lstrip("$") for word in words]
    return any(name.startswith("relion_") or name.rsplit("/", 1)[-1] in launchers for name in names)


def hidden_block(script: Script, launchers: Sequence[str]) -> tuple[list[int], list[int], int] | None:
    """A directive block that commands put before: (indices of those commands, of the column-0 ``#SBATCH`` lines
    after them, index of the block's last line). None when sbatch did read directives before the command, or when
    the first ``#SBATCH`` after a command comes after the job's own work (a RELION or launcher command): then it is
    no block that a stray command cut off."""
    if any(True for _ in script.directives()):
        return None  # sbatch read a block: a later #SBATCH is one stray line (its own finding), not the block
    lines = script.lines
    commands: list[int] = []
    i = script.body_start
    while i < len(lines) and not lines[i].text.startswith(MAGIC):
        if _is_command(lines[i]):
            if _runs_the_job(lines[i].text, launchers):
                return None
            commands.append(i)
        i += 1
    hidden: list[int] = []
    while i < len(lines) and not _is_command(lines[i]):
        if lines[i].text.startswith(MAGIC):
            hidden.append(i)
        i += 1
    if not commands or not hidden:
        return None
    return commands, hidden, hidden[-1]


def _as_directive(line: Line, ctx: Context) -> Line:
    """A moved ``#SBATCH`` line, parsed as the directive it now is (as script.parse does)."""
    words, comment = split_words(line.text[len(MAGIC) :])
    extra = site_table(ctx.site.site_options) if ctx.site.site_options else None
    options = tuple(parse_words(words, ctx.site.typo_distance, extra))
    return Line(Kind.DIRECTIVE, line.text, line.end, options, comment, line.number)


def _move_commands_below(script: Script, ctx: Context, found: tuple[list[int], list[int], int]) -> Script:
    commands, _, last = found
    first = commands[0]
    lines = list(script.lines)
    block = [
        _as_directive(line, ctx)
        if line.text.startswith(MAGIC)
        else Line(Kind.COMMENT, line.text, line.end, number=line.number)
        for line in lines[first + 1 : last + 1]
        if line.text.startswith(MAGIC) or not _is_command(line)
    ]
    moved = [line for line in lines[first : last + 1] if _is_command(line)]
    # Blank and comment lines between the commands stay with the block; the commands keep their order.
    return script.replace_lines([*lines[:first], *block, *moved, *lines[last + 1 :]])


@implements("ignored_directive")
def ignored_directives(script: Script, ctx: Context, report: Report) -> Script:
    found = hidden_block(script, (*ctx.site.launchers, "srun", "mpirun"))
    hidden: list[int] = []
    if found is not None:
        commands, hidden, last = found
        line = script.lines[commands[0]]
        more = f" (and {len(commands) - 1} more command{'s' if len(commands) > 2 else ''})" if len(commands) > 1 else ""
        them = f"all {len(hidden)} of them" if len(hidden) > 1 else "it"
        said = f"`{clip(line.text.strip(), 60)}`{more} comes before the #SBATCH line{'s' if len(hidden) > 1 else ''}"
        below = f"below the last #SBATCH line (line {script.lines[last].number})"
        report.fixed(
            line.number,
            f"{said}, so sbatch would ignore {them}: moved it {below}; move it there in the template",
            f"{said}, so sbatch ignores {them}: move it {below}",
        )
        script = _move_commands_below(script, ctx, found) if report.repairs else script
    skip = {script.lines[i].number for i in hidden} if not report.repairs else set()
    for line in lookalikes(script):
        if line.number in skip:
            continue
        where = "after the first command" if line.kind == Kind.BODY else "not written exactly '#SBATCH' at column 0"
        report.problem(
            line.number,
            f"{clip(line.text.strip(), 120)!r} is {where}, so sbatch ignores it; move it into the directive block "
            "at the top",
        )
    return script


_SLURM_TEMPLATE = (
    f"#SBATCH --ntasks={gui.MPINODES} --cpus-per-task={gui.THREADS} --partition={gui.QUEUE} "
    f"--output={gui.OUTFILE} --error={gui.ERRFILE}"
)


@implements("foreign_scheduler")
def foreign_scheduler(script: Script, ctx: Context, report: Report) -> Script:
    found = foreign_directives(script)
    if not found or any(True for _ in script.directives()):
        return script
    line, system = found[0]
    default = " (RELION's default qsub.csh)" if "-pe" in line.text and script.lines[0].text.endswith("csh") else ""
    report.problem(
        line.number,
        f"this is a template for {system}{default}, not Slurm ({clip(line.text.strip())!r} and no #SBATCH line): "
        f"set 'Standard submission script' (RELION_QSUB_TEMPLATE) to a Slurm template, e.g. one with "
        f"'{_SLURM_TEMPLATE}'",
    )
    return script


@implements("foreign_directive")
def foreign_directive(script: Script, ctx: Context, report: Report) -> Script:
    found = foreign_directives(script)
    if not found or not any(True for _ in script.directives()):
        return script  # no Slurm directive at all: foreign_scheduler's finding
    line, system = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    report.problem(
        line.number,
        f"{clip(line.text.strip())!r}{more} is {'an' if system[0] in 'AEIOSL' else 'a'} {system} directive in a Slurm "
        "script; write what it asks as "
        "#SBATCH options (or delete it)",
    )
    return script


def _comma_space(ctx: Context, report: Report, line: Line, parsed: Parsed) -> list[Parsed] | None:
    """A value cut in two by a space after a comma: one finding on the option, its stray words go with it."""
    runs = comma_runs(line.options)
    at = index_of(line.options, parsed)
    if at in runs:
        words = runs[at]
        value = (parsed.value or "") + "".join(w.spelled for w in words)
        written = f"{parsed.spelled}={parsed.value} {' '.join(w.spelled for w in words)}"
        box = ctx.box_for(line.number, line.text) or profile_box(ctx, parsed.name or "") or "the template"
        stray = clip(words[0].spelled)
        said = f"{clip(written)!r} has a space after a comma, so sbatch reads {stray!r} as a word of its own"
        report.fixed(
            line.number,
            f"{said}: read it as --{parsed.name}={clip(value)}; remove the space after the comma in {box}",
            f"{said} and refuses the script (Invalid directive): remove the space after the comma in {box}",
        )
        return [Parsed(parsed.spelled, parsed.option, value)]
    if any(parsed is w for words in runs.values() for w in words):
        return []
    return None


@implements("typo")
def typos(script: Script, ctx: Context, report: Report) -> Script:
    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        joined = _comma_space(ctx, report, line, parsed)
        if joined is not None:
            return joined
        if parsed.problem is None:
            return None
        if parsed.guess is not None and report.repairs:
            report.fixed(
                line.number, f"'{clip(parsed.spelled)}' is not an sbatch option; read it as '--{parsed.guess.name}'"
            )
            return [Parsed(f"--{parsed.guess.name}", parsed.guess, parsed.value)]
        hint = ""
        box = ctx.box_for(line.number, line.text)
        where = box or profile_box(ctx, "") or "the template (or the GUI box it came from)"
        if parsed.spelled.startswith("--") and parsed.option is None and "ambiguous" not in parsed.problem:
            word = parsed.spelled[2:]
            # Suggest only what a slip of the keyboard could have produced; far matches are noise.
            close = [f"--{name}" for d, name in nearest(word, 3) if d <= max(ctx.site.typo_distance, len(word) // 3)]
            hint = (
                f"; did you mean {' or '.join(close)}?"
                if close
                else f": remove it from {where} (`man sbatch` lists the options sbatch knows; a site plugin's "
                "option belongs in the profile's [site_options])"
            )
        elif "requires an argument" in parsed.problem:
            hint = "; give it a value or remove it"
        elif parsed.spelled and not parsed.spelled.startswith("-"):
            hint = gui.stray_word_hint(ctx.site, line, parsed, box)
        report.refuse(line.number, f"{parsed.problem}{hint}")
        return None

    return rewrite(script, visit)


@implements("memory_conflict")
def memory(script: Script, ctx: Context, report: Report) -> Script:
    cli = [name for name in MEMORY if ctx.cli_has(name)]
    if cli:
        # Memory options are checked together (sbatch: "--mem, --mem-per-cpu, and --mem-per-gpu are mutually
        # exclusive"), so a command-line one must replace, not override, the script's.
        def drop_all(line: Line, parsed: Parsed) -> list[Parsed] | None:
            if parsed.name not in MEMORY:
                return None
            report.fixed(
                line.number,
                f"dropped --{parsed.name}={parsed.value}: --{cli[-1]} is given on the command line",
                f"--{parsed.name}={parsed.value} conflicts with --{cli[-1]} on the command line: remove one",
            )
            return []

        return rewrite(script, drop_all)
    has = {name: script.has(name) for name in MEMORY}
    drop: set[str] = set()
    if has["mem"] and (has["mem-per-cpu"] or has["mem-per-gpu"]):
        drop.add("mem")
    if has["mem-per-cpu"] and has["mem-per-gpu"]:
        drop.add("mem-per-gpu")  # RELION's "Memory Per Thread" is --mem-per-cpu: keep the GUI's value
    if not drop:
        return script
    kept = "--mem-per-cpu" if has["mem-per-cpu"] else "--mem-per-gpu"

    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        if parsed.name not in drop:
            return None
        report.fixed(
            line.number,
            f"dropped --{parsed.name}={parsed.value}: {kept} is set",
            f"--{parsed.name}={parsed.value} and {kept} are both set: Slurm refuses the pair; remove one",
        )
        return []

    return rewrite(script, visit)


@implements("duplicate_gres")
def merge_gres(script: Script, ctx: Context, report: Report) -> Script:
    found = [(index, parsed) for index, _, parsed in script.options() if parsed.name == "gres"]
    if not found:
        return script
    merged: dict[tuple[str, str | None], Gres] = {}
    for _, parsed in found:
        for item in (parsed.value or "").split(","):
            if not item or item == "none":
                continue
            gres = Gres.parse(item)
            key = (gres.name, gres.type)
            old = merged.get(key)
            if old is not None and old.count != gres.count:
                keep = gres if (gres.count or 0) > (old.count or 0) else old
                report.fixed(
                    0,
                    f"--gres asks for {old.text} and {gres.text}; keeping the larger, {keep.text}",
                    f"--gres asks for {old.text} and {gres.text}: keep one",
                )
                gres = keep
            merged[key] = gres
    # "gpu:4" next to "gpu:p100:4": the typed request says more; keep it.
    for name, kind in list(merged):
        if kind is None and any(n == name and t is not None for n, t in merged):
            report.fixed(
                0,
                f"dropped untyped {merged[(name, None)].text}: a typed {name} request is also given",
                f"untyped {merged[(name, None)].text} next to a typed {name} request: keep one",
            )
            del merged[(name, None)]
    value = ",".join(g.render() for g in merged.values())
    if not merged or (len(found) == 1 and value == found[0][1].value):
        return script  # nothing to merge (or an explicit --gres=none): leave the user's text alone
    if len(found) > 1:
        report.fixed(
            script.lines[found[0][0]].number,
            f"merged {len(found)} --gres directives into --gres={value}",
            f"{len(found)} --gres directives: sbatch keeps only the last; write one --gres={value}",
        )
    first = found[0][1]

    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
        if parsed.name != "gres":
            return None
        return [new_option("gres", value)] if parsed is first else []

    return rewrite(script, visit)


def _where_given(script: Script, ctx: Context, index: int, parsed: Parsed) -> str:
    line = script.lines[index]
    box = ctx.box_for(line.number, line.text)
    return f"line {line.number}{f' from {box}' if box else ''}: {clip(str(parsed.value), 30)}"


@implements("repeated_option")
def repeated_option(script: Script, ctx: Context, report: Report) -> Script:
    seen: dict[str, list[tuple[int, Parsed]]] = {}
    for index, _, parsed in script.options():
        option = parsed.option
        if option is None or parsed.problem or option.arg is NONE or option.name == "gres":
            continue
        seen.setdefault(option.name, []).append((index, parsed))
    for name, given in seen.items():
        values = [p.value for _, p in given]
        if len(set(values)) < 2 or ctx.cli_has(name):
            continue  # the same value twice changes nothing; the command line overrides them all anyway
        shown = ", ".join(_where_given(script, ctx, index, p) for index, p in given)
        join = " (or ask for both in one, e.g. --constraint='a&b')" if name == "constraint" else ""
        report.problem(
            script.lines[given[-1][0]].number,
            f"--{name} is given {len(given)} times ({shown}); sbatch uses only the last, "
            f"{clip(str(values[-1]), 30)}: keep the one you mean{join}",
        )
    return script


@implements("missing_chdir")
def missing_chdir(script: Script, ctx: Context, report: Report) -> Script:
    value = effective(script, ctx, "chdir")
    if not value:
        return script
    # sbatch makes a relative --chdir absolute against its own working directory (src/sbatch/opt.c), which is
    # relion-qsub's (RELION's project directory); nothing in it is expanded ($HOME, CREATE_PWD stay as written).
    # slurmd then cannot enter it: the job fails at launch (JobLaunchFailure, exit 0:53) with no output at all,
    # since its output files would be in that directory too (checked on the testbed; --test-only accepts it).
    path = os.path.join(os.getcwd(), value)
    if os.path.isdir(path):
        return script
    given = [(index, parsed) for index, _, parsed in script.options() if parsed.name == "chdir"]
    line = script.lines[given[-1][0]] if given and not ctx.cli_has("chdir") else None
    where = "the command line" if line is None else (ctx.box_for(line.number, line.text) or "the template")
    report.problem(
        line.number if line is not None else 0,
        f"--chdir={clip(value)} is no directory ({path} does not exist), so the job would fail at start "
        f"with no output: remove --chdir from {where} (the job then starts in the submit directory, RELION's project "
        "directory) or name a directory that exists",
    )
    return script
