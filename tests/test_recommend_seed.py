"""The Biowulf profile's recipes are the seed page's tables: every row read back, value by value.

The seed page's "Recommended parameters" and "Using Topaz" tables are the project's own data
(``tests/data/seed_recommended.json``: (section, node type, tab, label, value), re-recorded from the page by
``tests/data/extract_seed_tables.py``) and are compared with what ``relion-qsub recommend`` prints from
``relion_qsub/profiles/biowulf.toml``, in both directions: no seed row missing, no profile row invented.

Two seed typos are corrected in the data and named in its "errata"; nothing else differs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from relion_qsub import profile
from relion_qsub.profile import recipes
from relion_qsub.sitetools.recommend import running_tab

DATA = Path(__file__).resolve().parent / "data" / "seed_recommended.json"


def load_tables() -> tuple[dict[str, str], dict[tuple[str, str | None], dict[str, dict[str, str]]]]:
    """The seed's sections and, per (recipe, node type or None), tab -> label -> value (tests/data, errata applied)."""
    doc = json.loads(DATA.read_text())
    tables = {(row["recipe"], row["node_type"]): row["tabs"] for row in doc["rows"]}
    return doc["sections"], tables


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
SECTIONS, TABLES = load_tables()
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
