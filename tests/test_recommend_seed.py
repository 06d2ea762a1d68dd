"""The Biowulf profile's recipes are the seed page's tables: every row read back, value by value.

The seed (``/work/shared/seed/relion-on-biowulf.txt``, "Recommended parameters" and "Using Topaz") is parsed here
into (section, node type, tab, label, value) and compared with what ``relion-qsub recommend`` prints from
``relion_qsub/profiles/biowulf.toml``, in both directions: no seed row missing, no profile row invented.

Two seed typos are corrected in the profile and named here (SEED_ERRATA); nothing else differs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.profile import recipes
from relion_qsub.sitetools.recommend import running_tab

SEED = Path(os.environ.get("RELION_QSUB_SEED", "/work/shared/seed/relion-on-biowulf.txt"))
if not SEED.is_file():  # pragma: no cover - the seed page is part of the project's shared material
    SEED = Path(__file__).resolve().parent / "data" / "relion-on-biowulf.txt"

SECTIONS = {
    "MotionCor2 with GPUs": "motioncor2",
    "MotCorRel on CPUs only": "motcorrel",
    "CTFRefinement using cttfind4": "ctffind",
    "GCTF with GPU": "gctf",
    "Class2D & Class3D on GPUs": "class_gpu",
    "Class2D & Class3D on CPUs": "class_cpu",
    "3D auto-refine and Bayesian polishing": "refine",
    "VDAM optimization": "vdam",
    "Make pseudo-subtomograms": "pseudo_subtomo",
    "Subtomogram de novo 3D Model Generation": "subtomo_denovo",
    "Training with Topaz": "topaz_training",
    "Picking with Topaz": "topaz_picking",
}
NODE = re.compile(r"^ (k80|p100|v100x?|a100|x2695|x2680):\s*$")
TAB = re.compile(r"^\*\*(.+?) tab:\*\*\s*$")
ROW = re.compile(r"^\|(.+?)\|(.*)\|\s*$")
# (recipe, tab, label, seed value) -> the profile's value, and text replaced in every seed value.
SEED_ERRATA = {
    # The seed's Gctf rows say "Use Gctf instead? no"; its CTF estimation section: "change the answer to 'Use Gctf
    # instead?' to 'Yes'". The profile says yes.
    ("gctf", "Gctf", "Use Gctf instead?", "no"): "yes",
}
TEXT_ERRATA = {"--exlusive": "--exclusive"}  # k80 rows: sbatch would refuse the misspelt option


def clean(text: str) -> str:
    text = text.replace("\\_", "_").replace("*", "").strip()
    if text == "-- leave blank --":
        return ""
    for wrong, right in TEXT_ERRATA.items():
        text = text.replace(wrong, right)
    return re.sub(r"\s+", " ", text)


def parse_seed(text: str) -> dict[tuple[str, str | None], dict[str, dict[str, str]]]:
    """(recipe, node type or None) -> tab -> label -> value, for every table of the mapped sections."""
    out: dict[tuple[str, str | None], dict[str, dict[str, str]]] = {}
    recipe: str | None = None
    node: str | None = None
    tab: str | None = None
    for line in text.splitlines():
        if line.startswith("### "):
            recipe, node, tab = SECTIONS.get(clean(line[4:]).rstrip(":")), None, None
            continue
        if recipe is None:
            continue
        if NODE.match(line):
            node, tab = NODE.match(line).group(1), None  # type: ignore[union-attr]
            continue
        if TAB.match(line):
            tab = TAB.match(line).group(1)  # type: ignore[union-attr]
            continue
        row = ROW.match(line)
        if tab and row and row.group(1).strip() not in ("", "---"):
            label, value = clean(row.group(1)), clean(row.group(2))
            value = SEED_ERRATA.get((recipe, tab, label, value), value)
            out.setdefault((recipe, node), {}).setdefault(tab, {})[label] = value
    return out


def seed_mpi(text: str) -> tuple[str, tuple[int, ...]]:
    """'4, 8, 12, 16, OR 20 (multiple of 4)' -> choices; '128-2048' -> range; '65' -> value."""
    text = re.sub(r"\(.*?\)", "", text).strip()
    if re.fullmatch(r"\d+-\d+", text):
        return "range", tuple(int(n) for n in text.split("-"))
    numbers = tuple(int(n) for n in re.findall(r"\d+", text))
    return ("choices", numbers) if len(numbers) > 1 else ("value", numbers)


def profile_mpi(mpi: recipes.Mpi) -> tuple[str, tuple[int, ...]]:
    if mpi.choices:
        return "choices", mpi.choices
    if mpi.high:
        return "range", (mpi.low, mpi.high)
    return "value", (mpi.value,)


SITE = profile.load("biowulf")
TABLES = parse_seed(SEED.read_text())
ROWS = sorted(TABLES, key=lambda k: (k[0], k[1] or ""))


def profile_row_key(recipe: recipes.Recipe, node: str | None) -> str:
    if node is not None:
        return node
    assert len(recipe.rows) == 1, f"seed gives {recipe.key} without node type; the profile must have one row"
    return next(iter(recipe.rows))


def test_seed_parsed_every_section_and_node_row() -> None:
    assert {r for r, _ in TABLES} == set(SECTIONS.values())
    assert len(TABLES) == 34  # 5 + 2 + 1 + 5 + 5 + 2 + 1 + 5 + 1 + 5 + 1 + 1 rows


def test_profile_has_no_rows_the_seed_lacks() -> None:
    seeded = {(r, profile_row_key(SITE.profile.recipes[r], n)) for r, n in TABLES}
    # Recipes the site adds for job types the seed gives no row for (CtfRefine, LocalRes) say so in their source.
    seed_recipes = {key: r for key, r in SITE.profile.recipes.items() if not r.source.startswith("site choice")}
    in_profile = {(key, node) for key, recipe in seed_recipes.items() for node in recipe.rows}
    assert in_profile == seeded


@pytest.mark.parametrize(("recipe_key", "node"), ROWS, ids=[f"{r}-{n or 'any'}" for r, n in ROWS])
def test_profile_row_matches_seed(recipe_key: str, node: str | None) -> None:
    recipe = SITE.profile.recipes[recipe_key]
    row = recipe.rows[profile_row_key(recipe, node)]
    seed_tabs = TABLES[(recipe_key, node)]
    running = dict(seed_tabs.pop("Running"))
    assert seed_mpi(running.pop("Number of MPI procs:")) == profile_mpi(row.mpi)
    ours = dict(running_tab(SITE, row, row.mpi.text(), row.threads))
    ours.pop("Number of MPI procs:")
    assert ours == running
    # Other tabs: every seed row, except the user's own paths ("/path/to/..."), which the profile cannot know.
    expected = {
        tab: {label: value for label, value in rows.items() if not value.startswith("/path/to/")}
        for tab, rows in seed_tabs.items()
    }
    assert {tab: dict(rows) for tab, rows in recipe.tabs} == expected


def test_tool_paths_are_the_seeds() -> None:
    assert SITE.profile.tools["motioncor2"] == TABLES[("motioncor2", "p100")]["Motion"]["MOTIONCOR2 executable:"]
    assert SITE.profile.tools["ctffind"] == TABLES[("ctffind", None)]["CTFFIND-4.1"]["CTFFIND-4.1 executable:"]
    assert SITE.profile.tools["gctf"] == TABLES[("gctf", "p100")]["Gctf"]["Gctf executable:"]


def test_safe_threads_and_scratch_follow_the_seed() -> None:
    # seed: threads 1 for k80, 2 for p100, 4 for v100, v100x, a100; the class GPU rows allocate each node's lscratch.
    for name in ("k80", "p100", "v100", "v100x", "a100"):
        node = SITE.profile.node_types[name]
        assert node.safe_threads == SITE.gpu_safe_threads[name]
        assert f"lscratch:{node.scratch_gb}," in SITE.profile.recipes["class_gpu"].rows[name].gres
