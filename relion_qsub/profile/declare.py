"""How a profile key is declared: its type, its default, what it means, and the values it may take.

A section whose keys map one to one onto a typed object (``[scratch]``, ``[submit]``, ``[partitions.<name>]`` ...)
is declared by that object's frozen dataclass: each field made with :func:`key` is a profile key, its annotation is
the type, and the checker (``keys.check``), the typed object (``keys.build``) and docs/profile-reference.md all come
from that one field. The other sections (recipes, templates, node types) are declared with :class:`Key` and
:class:`Table` directly in ``relion_qsub.profile.keys``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Kind(enum.Enum):
    """The TOML type a key's value must have; the value is what an error message says was expected."""

    STRING = "a string"
    INTEGER = "a whole number"
    NUMBER = "a number"
    BOOLEAN = "true or false"
    STRINGS = "a list of strings"
    NUMBERS = "a list of numbers"
    MPI = 'a number, a list of numbers or a range "low-high"'

    @property
    def word(self) -> str:
        """The type as docs/profile-reference.md names it."""
        return self.name.lower()


# A key without a default of its own: absent means what its meaning says (computed, inherited, or required).
NO_DEFAULT: Any = None

# A dataclass field's annotation (a string: `from __future__ import annotations`) -> the profile type it declares.
_KIND_OF_ANNOTATION = {
    "str": Kind.STRING,
    "int": Kind.INTEGER,
    "float": Kind.NUMBER,
    "bool": Kind.BOOLEAN,
    "tuple[str, ...]": Kind.STRINGS,
    "tuple[float, ...]": Kind.NUMBERS,
}


@dataclass(frozen=True, slots=True)
class Key:
    """One key: its type, its default (filled in when absent unless ``fill`` is off), what it means, and the
    range or choices its value must be in (checked when the typed object is built)."""

    kind: Kind
    default: Any
    doc: str
    fill: bool = True
    required: bool = False
    minimum: int = 0
    maximum: int | None = None
    why: str = ""  # why the maximum: said in the error
    choices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Table:
    """A table of known keys, or (``each``) a table of named entries that all follow one table's schema; ``free``:
    any other key is a free label whose value follows that key's declaration."""

    doc: str
    keys: dict[str, Key | Table | Array] = field(default_factory=dict)
    each: Table | None = None
    free: Key | None = None
    names: tuple[str, ...] = ()
    label: str = "<label>"  # what the reference calls a free key


@dataclass(frozen=True, slots=True)
class Array:
    """An array of tables (``[[fields]]``)."""

    doc: str
    item: Table


Node = Key | Table | Array


def key(default: Any, doc: str, **limits: Any) -> Any:
    """A dataclass field that declares a profile key (``limits``: :class:`Key`'s minimum, maximum, why, choices)."""
    return field(default=default, metadata={"doc": doc, **limits})


def declared(cls: type) -> dict[str, Key]:
    """The profile keys a dataclass declares with :func:`key`, in field order."""
    out = {}
    for f in cls.__dataclass_fields__.values():  # type: ignore[attr-defined]
        if "doc" in f.metadata:
            meta = dict(f.metadata)
            default = list(f.default) if isinstance(f.default, tuple) else f.default  # as TOML gives it: a list
            out[f.name] = Key(_KIND_OF_ANNOTATION[f.type], default, meta.pop("doc"), **meta)
    return out


def section(cls: type, doc: str) -> Table:
    """The table a dataclass declares."""
    return Table(doc, dict(declared(cls)))
