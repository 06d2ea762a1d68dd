"""The directives themselves: lines sbatch ignores, other batch systems', unknown options, and options given twice
or in pairs Slurm refuses."""

from __future__ import annotations

from ..relion import gui
from ..script import Kind, Line, Script, foreign_directives, lookalikes
from ..slurm.options import NONE, Parsed, clip, nearest
from .core import Context, Gres, Report, implements, new_option, profile_box, rewrite

MEMORY = ("mem", "mem-per-cpu", "mem-per-gpu")


@implements("ignored_directive")
def ignored_directives(script: Script, ctx: Context, report: Report) -> Script:
    for line in lookalikes(script):
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


@implements("typo")
def typos(script: Script, ctx: Context, report: Report) -> Script:
    def visit(line: Line, parsed: Parsed) -> list[Parsed] | None:
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
