"""Templates written for a patched RELION, on stock RELION: fill the placeholders the site profile declares.

EasyBuild's RELION patches make RelionJob::saveJobSubmissionScript fill XXXaccountXXX, XXXqosXXX, XXXtimelimitXXX,
XXXgpuspecXXX and XXXextrasbatchXXX, and VBC's script uses XXXjobtypeXXX; stock RELION fills only its own
placeholders and leaves these in the script literally. The profile's ``[placeholders.<name>]`` says where each
value comes from (``relion_qsub.profile.site.Placeholder``); they are filled in the text before it is parsed, so a
value holding several options (XXXextrasbatchXXX) is read as sbatch reads it. RELION's own script is only read.

Imported only for a script that holds a placeholder the profile declares (``prepare``): the check path stays light.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import ProfileError
from ..profile import Site
from ..profile.site import Placeholder
from ..relion import jobdir as jobdir_mod
from ..relion import jobstar
from ..relion.gui import placeholder
from .core import Change, Outcome

RULE = "placeholders"
REASON = "the site profile's [placeholders] says how to fill a patched RELION's placeholder"


def declared_in(text: str, site: Site) -> list[str]:
    """The names of the profile's placeholders that ``text`` holds, in the profile's order."""
    return [name for name in site.placeholders if placeholder(name) in text]


def _job(source: Path, site: Site, name: str) -> jobstar.JobStar:
    jobdir = jobdir_mod.of_script(source)
    found = jobstar.read(jobdir) if jobdir is not None else None
    if found is None:
        raise ProfileError(
            f"{site.path}: placeholders.{name}: {placeholder(name)} is filled from job.star, but {source} has no "
            "job.star beside it (not a script RELION wrote in a job dir): run the job from RELION, or give "
            f'placeholders.{name} source = "constant"'
        )
    return found


def value_of(name: str, entry: Placeholder, site: Site, source: Path, environ: Mapping[str, str]) -> str:
    """The value of ``XXX<name>XXX``; a ProfileError naming the profile key when its source has none."""
    if entry.source == "constant":
        return entry.value
    if entry.source == "env":
        if entry.value not in environ:
            raise ProfileError(
                f"{site.path}: placeholders.{name}: environment variable {entry.value} is not set, so "
                f"{placeholder(name)} cannot be filled: set it in RELION's environment (where RELION_QSUB_TEMPLATE "
                "is set) or give the placeholder a constant"
            )
        return environ[entry.value]
    job = _job(source, site, name)
    if entry.source == "jobtype":
        return job.type or str(job.type_code)
    box = job.text(entry.value)
    if box is None:
        raise ProfileError(
            f"{site.path}: placeholders.{name}: job.star of {source.parent} has no box {entry.value} (RELION shows "
            f"it only where RELION_QSUB_EXTRA{entry.value[10:]} is set): set that variable, or name another box"
        )
    return box


def fill(
    text: str, site: Site, source: Path, environ: Mapping[str, str] | None = None
) -> tuple[str, tuple[Change, ...]]:
    """``text`` with every declared placeholder filled, and one "fixed" finding for each (at its first line)."""
    env = os.environ if environ is None else environ
    changes = []
    for name in declared_in(text, site):
        entry = site.placeholders[name]
        value = value_of(name, entry, site, source, env)
        if "\n" in value:
            raise ProfileError(f"{site.path}: placeholders.{name}: its value {value!r} has a line break: give one line")
        mark = placeholder(name)
        line = text[: text.index(mark)].count("\n") + 1
        how = {"constant": "its constant", "env": f"${entry.value}", "jobtype": "job.star's job type"}
        where = how.get(entry.source, f"job.star's {entry.value}")
        changes.append(
            Change(
                RULE, Outcome.FIXED, line, f"filled {mark} with {value!r} from {where} (placeholders.{name})", REASON
            )
        )
        text = text.replace(mark, value)
    return text, tuple(sorted(changes, key=lambda change: change.line))
