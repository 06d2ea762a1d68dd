"""Run the checks: the normalisation rules on a script, then the fit checks on the result, in the registry's order.

Normalising is idempotent: normalising a normalised script changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..script import Script
from ..slurm.options import Parsed, parse_words, site_table
from . import allocation, data, fit, layout, options, placeholders, scratch
from .core import FUNCTIONS, Context, Report, Result
from .registry import RULES, Action, Kind

# The modules whose functions implement the registry's checks (importing them attaches each to its key).
MODULES = (placeholders, options, scratch, layout, allocation, fit, data)


def _run(kind: Kind, script: Script, ctx: Context) -> Result:
    changes = []
    for rule in RULES:
        action = ctx.policy[rule.key]
        if rule.kind is not kind or action is Action.OFF:
            continue
        report = Report(rule.name, rule.reason, action)
        repaired = FUNCTIONS[rule.key](script, ctx, report)
        # A refusal repairs nothing: `check` shows the refused script as it was written. Fit checks only report.
        if repaired is not None and action is not Action.ERROR:
            script = repaired
        changes.extend(report.changes)
    return Result(script, tuple(changes))


def normalise(script: Script, ctx: Context) -> Result:
    """The script repaired as the site's policy says, with every finding of the normalisation rules."""
    return _run(Kind.NORMALISE, script, ctx)


def check_fit(result: Result, ctx: Context) -> Result:
    """``result`` with the fit checks' findings added (they change nothing in the script)."""
    found = _run(Kind.FIT, result.script, ctx)
    return Result(result.script, result.changes + found.changes)


def parse_cli_options(
    words: Sequence[str], max_distance: int = 2, site_options: Mapping[str, str] | None = None
) -> tuple[Parsed, ...]:
    """sbatch options given on relion-qsub's command line (they win over the script's)."""
    return tuple(parse_words(words, max_distance, site_table(site_options) if site_options else None))
