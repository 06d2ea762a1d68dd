"""A small, tolerant STAR reader: enough to judge RELION's pipeline file and list micrographs.

Not a general STAR implementation (no multi-line ``;`` text fields, no nested loops). It reads what RELION 3.1-5.0
write: ``data_NAME`` blocks holding ``_rlnLabel value`` pairs or one ``loop_`` with ``_rlnLabel #N`` headers and
whitespace-separated rows. Instead of raising on damage it records ``problems`` with line numbers, because the
doctor's job is to say what is wrong with a file RELION cannot read.

RELION's own reader (``MetaDataTable::readStarLoop``) reports "Error in line: ..." when a row has a different
number of values than the loop has labels, and ignores (but keeps) labels it does not know; a missing label only
shows up later, as "cannot find name or type in pipeline_nodes table" (verified with relion_pipeliner 3.1.3).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass
class Block:
    name: str  # without "data_"
    line: int  # 1-based line of the data_ header
    pairs: dict[str, str] = field(default_factory=dict)  # label (without "_") -> value
    labels: list[str] = field(default_factory=list)  # loop labels, without "_" and "#N"
    rows: list[list[str]] = field(default_factory=list)
    is_loop: bool = False

    def column(self, label: str) -> list[str]:
        """The values of one loop column (rows that are too short are skipped)."""
        if label not in self.labels:
            return []
        i = self.labels.index(label)
        return [row[i] for row in self.rows if len(row) > i]


@dataclass
class Star:
    blocks: list[Block] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, message)

    def block(self, name: str) -> Block | None:
        for b in self.blocks:
            if b.name == name:
                return b
        return None


def _tokens(line: str) -> list[str]:
    if '"' in line or "'" in line:
        try:
            return shlex.split(line, comments=False)
        except ValueError:
            pass
    return line.split()


def parse(text: str) -> Star:
    star = Star()
    block: Block | None = None
    in_header = False  # inside a loop, still reading "_label" lines
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("data_"):
            block = Block(line[5:].split()[0] if len(line) > 5 else "", number)
            star.blocks.append(block)
            in_header = False
            continue
        if block is None:
            star.problems.append((number, f"text before the first data_ block: {line[:60]!r}"))
            continue
        if line.startswith("loop_"):
            block.is_loop, in_header = True, True
            continue
        if line.startswith("_"):
            words = line.split()
            label = words[0][1:]
            if block.is_loop and (in_header or not block.rows):
                block.labels.append(label)
                in_header = True
            elif block.is_loop:
                star.problems.append((number, f"label _{label} after the rows of the loop in data_{block.name}"))
            else:
                block.pairs[label] = " ".join(words[1:])
            continue
        if block.is_loop:
            in_header = False
            row = _tokens(line)
            if len(row) != len(block.labels):
                star.problems.append(
                    (
                        number,
                        f"row with {len(row)} value(s) in a loop of {len(block.labels)} label(s) in data_{block.name}",
                    )
                )
            block.rows.append(row)
        else:
            star.problems.append((number, f"value without a label in data_{block.name}: {line[:60]!r}"))
    return star
