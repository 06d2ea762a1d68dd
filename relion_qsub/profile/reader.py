"""Typed access to a checked site profile's tables, with errors that name the file, the key and what is expected.

Used by ``site`` (the submit path's part of a profile) and ``recipes`` (the rest).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from ..errors import ProfileError
from ..slurm.options import nearest
from . import forms
from .declare import Kind, declared

T = TypeVar("T")
FILLED: Any = object()  # Reader: "the schema filled this key in"


def unknown_key(path: str, where: str, key: str, known: Iterable[str], section: bool) -> ProfileError:
    """``where``+``key`` is not a known key (or section) of its table: the error names the nearest known one."""
    names = sorted(known)
    close = [name for d, name in nearest(key, 1, names) if d <= max(2, len(key) // 3)]
    what = "section" if section else "key"
    hint = f"did you mean {where}{close[0]}?" if close else f"known: {', '.join(names)}"
    return ProfileError(f"{path}: {where}{key}: unknown {what}; {hint}")


class Reader:
    """Typed access to a TOML table that reports mistakes as ``file: key: expected ..., got ...``.

    The profile reaching it went through ``keys.check``, which filled in every default: a read without
    ``default`` takes the file's (or the schema's) value. ``default`` is for values inherited from elsewhere in the
    profile (a recipe row from the recipe's defaults).
    """

    def __init__(self, path: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix

    def fail(self, key: str, expected: str, got: object) -> ProfileError:
        return ProfileError(f"{self.path}: {self.prefix}{key}: expected {expected}, got {got!r}")

    def get(self, key: str, default: Any) -> Any:
        if key in self.data:
            return self.data[key]
        if default is FILLED:
            raise ProfileError(f"{self.path}: {self.prefix}{key}: missing")
        return default

    def table(self, key: str) -> Reader:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        return Reader(self.path, value, f"{self.prefix}{key}.")

    def text(self, key: str, default: Any = FILLED, choices: tuple[str, ...] = ()) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or (choices and value not in choices):
            raise self.fail(key, "one of " + ", ".join(choices) if choices else "a string", value)
        return value

    def key_of(self, key: str, table: str, keys: list[str]) -> str:
        """A string naming an entry of another table (``[partitions]``, ``[recipes]`` ...)."""
        value = self.text(key, "")
        if value not in keys:
            raise self.fail(key, f"one of the [{table}] ({', '.join(keys)})", value)
        return value

    def integer(
        self, key: str, default: Any = FILLED, minimum: int = 0, maximum: int | None = None, why: str = ""
    ) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"a whole number >= {minimum}", value)
        if maximum is not None and value > maximum:
            raise self.fail(key, f"a whole number <= {maximum}{why}", value)
        return value

    def boolean(self, key: str, default: Any = FILLED) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def required(self, key: str, expected: str) -> Any:
        if key not in self.data:
            raise ProfileError(f"{self.path}: {self.prefix}{key}: missing; expected {expected}")
        return self.data[key]

    def pairs(self, key: str) -> tuple[tuple[str, str], ...]:
        """A table of label = "value" strings, in file order (tomllib keeps it)."""
        table = self.table(key)
        return tuple((label, table.text(label)) for label in table.keys())

    def number(self, key: str, default: Any = FILLED) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(key, "a number >= 0", value)
        return float(value)

    def strings(self, key: str, default: Any = FILLED) -> tuple[str, ...]:
        value = self.get(key, default)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of strings", value)
        return tuple(value)

    def numbers(self, key: str, default: Any = FILLED) -> tuple[float, ...]:
        value = self.get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, int | float) and v >= 0 for v in value):
            raise self.fail(key, "a list of numbers >= 0", value)
        return tuple(float(v) for v in value)

    def keys(self) -> list[str]:
        return list(self.data)

    def value(self, name: str, kind: Kind, limits: Mapping[str, Any]) -> Any:
        """The value of a declared key (relion_qsub.profile.declare), of its type and in its range or choices."""
        if kind is Kind.STRING:
            text = self.text(name, choices=limits.get("choices", ()))
            return forms.check(self, name, text, limits["form"]) if "form" in limits else text
        if kind is Kind.INTEGER:
            minimum, maximum, why = limits.get("minimum", 0), limits.get("maximum"), limits.get("why", "")
            return self.integer(name, minimum=minimum, maximum=maximum, why=why)
        if kind is Kind.NUMBER:
            return self.number(name)
        if kind is Kind.BOOLEAN:
            return self.boolean(name)
        if kind is Kind.STRINGS:
            return self.strings(name)
        if kind is Kind.NUMBERS:
            return self.numbers(name)
        raise AssertionError(f"no typed field reads {kind}")

    def section(self, cls: type[T], **others: Any) -> T:
        """The typed object a dataclass declares (relion_qsub.profile.declare), from this table; ``others``: its
        fields that are not profile keys."""
        values = {name: self.value(name, kind, limits) for name, kind, _, limits in declared(cls)}
        return cls(**values, **others)
