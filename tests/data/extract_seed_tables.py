"""Re-record tests/data/seed_recommended.json from the seed page (a developer's tool, not a test).

    python tests/data/extract_seed_tables.py PATH/TO/relion-on-biowulf.txt > tests/data/seed_recommended.json

The tests read only the JSON file (the project's own record of the seed's "Recommended parameters" and "Using Topaz"
tables), never the page itself: a clean clone has everything they need. Review the diff before committing it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

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


ERRATA_NOTES = [
    "Gctf rows: the seed's tables say 'Use Gctf instead? no', its CTF estimation text says to change it to 'Yes': "
    "recorded as 'yes'",
    "k80 rows: the seed's '--exlusive' (sbatch would refuse it) is recorded as '--exclusive'",
    "'-- leave blank --' is recorded as an empty value; Markdown escapes and emphasis are removed; runs of white space "
    "are one space",
]


def main(seed: Path) -> str:
    tables = parse_seed(seed.read_text())
    rows = [
        {"recipe": recipe, "node_type": node, "tabs": tables[(recipe, node)]}
        for recipe, node in sorted(tables, key=lambda k: (k[0], k[1] or ""))
    ]
    doc = {
        "source": "NIH HPC 'RELION on Biowulf' page (the project's seed page): the tables under 'Recommended "
        "parameters' and 'Using Topaz', one entry per section and node type, read by tests/data/extract_seed_tables.py",
        "errata": ERRATA_NOTES,
        "sections": SECTIONS,
        "rows": rows,
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(main(Path(sys.argv[1])))
