"""How a profile key of a typed section is declared: its type, its default, what it means, the values it may take.

A section whose keys map one to one onto a typed object (``[scratch]``, ``[submit]``, ``[partitions.<name>]`` ...)
is declared by that object's frozen dataclass: each field made with :func:`key` is a profile key, its annotation is
its type (:class:`Kind`), and the checker and docs/profile-reference.md (``keys``) and the reading of the typed
object (``Reader.section``) all come from that one field. The sections that are not one object (recipes, templates,
node types) are declared in ``relion_qsub.profile.keys``.

This module is on the submit path: it defines no classes beyond :class:`Kind` (each dataclass costs start-up).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import field, fields
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
# What a key's declaration may say beyond type, default and meaning (checked when the typed object is read).
LIMITS = ("minimum", "maximum", "why", "choices", "form")


def key(default: Any, doc: str, **limits: Any) -> Any:
    """A dataclass field that declares a profile key. ``limits``: ``minimum``/``maximum`` (a whole number; ``why``
    says why the maximum in the error), ``choices`` (a string) or ``form`` (a string in a Slurm form: "time" or
    "memory", relion_qsub.profile.forms)."""
    unknown = set(limits) - set(LIMITS)
    assert not unknown, f"not a limit: {unknown}"
    return field(default=default, metadata={"doc": doc, **limits})


def declared(cls: type) -> Iterator[tuple[str, Kind, Any, Mapping[str, Any]]]:
    """(name, type, default, declaration) of each profile key a dataclass declares with :func:`key`, in order."""
    for f in fields(cls):
        if "doc" in f.metadata:
            yield f.name, _KIND_OF_ANNOTATION[str(f.type)], f.default, f.metadata
