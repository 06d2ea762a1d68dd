"""The site profile: what a cluster's partitions, GPUs and scratch look like, and what relion-qsub enforces.

A profile is a TOML file read with tomllib (stdlib: nothing heavy on the submit path). The packaged profiles live in
``relion_qsub/profiles/``; ``biowulf`` (the NIH values from the seed page) is the default. A site selects its own with
``--site NAME|PATH`` or ``RELION_QSUB_SITE`` (set by the environment module). Errors name the file, the key and
what is expected.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ProfileError

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "biowulf"

# What a check does when it fires: refuse the script, warn and submit, repair it, or nothing.
ACTIONS = ("error", "warn", "fix", "off")

DEFAULT_POLICY: dict[str, str] = {
    "empty_directive": "fix",
    "unfilled_placeholder": "warn",  # a directive with RELION's XXX...XXX left in: dropped with a warning
    "typo": "fix",
    "memory_conflict": "fix",
    "duplicate_gres": "fix",
    "scratch_inject": "fix",
    "scratch_gres": "fix",
    "scratch_job_id": "warn",
    "scratch_missing": "warn",
    "ntasks_mismatch": "error",
    "tasks_per_gpu": "warn",
    "threads_per_gpu": "error",
    "plus_one_launcher": "warn",
    "gpu_partition": "error",
    "gpu_without_gres": "error",
    "unknown_partition": "warn",
    "ignored_directive": "warn",
}

DEFAULT_TRANSIENT = (
    "Socket timed out on send/recv operation",
    "Unable to contact slurm controller",
    "Transport endpoint is not connected",
    "Zero Bytes were transmitted or received",
    "Slurm temporarily unable to accept job",
    "Connection refused",
)


@dataclass(frozen=True)
class Partition:
    name: str
    gpu_types: tuple[str, ...] = ()
    gpus_per_node: int = 0


@dataclass(frozen=True)
class Scratch:
    gres: str = "lscratch"
    root: str = "/lscratch"
    job_dir: str = "/lscratch/$SLURM_JOB_ID"
    min_gb: int = 5


@dataclass(frozen=True)
class Submit:
    sbatch: str = "sbatch"
    squeue: str = "squeue"
    timeout: float = 60.0
    attempts: int = 4
    backoff: tuple[float, ...] = (2.0, 5.0, 15.0)
    transient: tuple[str, ...] = DEFAULT_TRANSIENT


@dataclass(frozen=True)
class Site:
    name: str
    path: str
    partitions: Mapping[str, Partition] = field(default_factory=dict)
    gpu_safe_threads: Mapping[str, int] = field(default_factory=dict)
    scratch: Scratch = Scratch()
    policy: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_POLICY))
    typo_distance: int = 2
    launchers: tuple[str, ...] = ("RELION_STD_LAUNCHER", "relion-launch")
    submit: Submit = Submit()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def action(self, check: str) -> str:
        return self.policy.get(check, DEFAULT_POLICY.get(check, "warn"))

    def gpu_partitions(self) -> list[str]:
        return sorted(p.name for p in self.partitions.values() if p.gpu_types)


class _Reader:
    """Typed access to a TOML table that reports mistakes as ``file: key: expected ..., got ...``."""

    def __init__(self, path: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix

    def _fail(self, key: str, expected: str, got: object) -> ProfileError:
        return ProfileError(f"{self.path}: {self.prefix}{key}: expected {expected}, got {got!r}")

    def table(self, key: str) -> _Reader:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self._fail(key, "a table", value)
        return _Reader(self.path, value, f"{self.prefix}{key}.")

    def text(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or (choices and value not in choices):
            raise self._fail(key, "one of " + ", ".join(choices) if choices else "a string", value)
        return value

    def integer(self, key: str, default: int, minimum: int = 0) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._fail(key, f"a whole number >= {minimum}", value)
        return value

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self._fail(key, "a number >= 0", value)
        return float(value)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._fail(key, "a list of strings", value)
        return tuple(value)

    def numbers(self, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, int | float) and v >= 0 for v in value):
            raise self._fail(key, "a list of numbers >= 0", value)
        return tuple(float(v) for v in value)

    def keys(self) -> list[str]:
        return list(self.data)


def from_mapping(data: Mapping[str, Any], path: str) -> Site:
    top = _Reader(path, data)
    partitions: dict[str, Partition] = {}
    parts = top.table("partitions")
    for name in parts.keys():
        p = parts.table(name)
        types = p.strings("gpu_types", ())
        partitions[name] = Partition(name, types, p.integer("gpus_per_node", 4 if types else 0))
    gpu_types = top.table("gpu_types")
    safe = {name: gpu_types.table(name).integer("safe_threads", 1, minimum=1) for name in gpu_types.keys()}
    for part in partitions.values():
        for t in part.gpu_types:
            if t not in safe:
                raise ProfileError(
                    f"{path}: partitions.{part.name}.gpu_types: GPU type {t!r} has no [gpu_types.{t}] table"
                )
    s = top.table("scratch")
    scratch = Scratch(
        s.text("gres", "lscratch"),
        s.text("root", "/lscratch"),
        s.text("job_dir", "/lscratch/$SLURM_JOB_ID"),
        s.integer("min_gb", 5),
    )
    pol = top.table("policy")
    policy = dict(DEFAULT_POLICY)
    for key in pol.keys():
        if key == "typo_distance":
            continue
        if key not in DEFAULT_POLICY:
            raise ProfileError(f"{path}: policy.{key}: unknown check; known: {', '.join(sorted(DEFAULT_POLICY))}")
        policy[key] = pol.text(key, "warn", ACTIONS)
    sub = top.table("submit")
    submit = Submit(
        sub.text("sbatch", "sbatch"),
        sub.text("squeue", "squeue"),
        sub.number("timeout", 60.0),
        sub.integer("attempts", 4, minimum=1),
        sub.numbers("backoff", (2.0, 5.0, 15.0)),
        sub.strings("transient", DEFAULT_TRANSIENT),
    )
    return Site(
        name=top.text("name", Path(path).stem),
        path=path,
        partitions=partitions,
        gpu_safe_threads=safe,
        scratch=scratch,
        policy=policy,
        typo_distance=pol.integer("typo_distance", 2),
        launchers=top.strings("launchers", ("RELION_STD_LAUNCHER", "relion-launch")),
        submit=submit,
        raw=data,
    )


def resolve(name_or_path: str | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The profile file for ``--site``, else ``$RELION_QSUB_SITE``, else the default (a name or a path)."""
    choice = name_or_path or environ.get("RELION_QSUB_SITE") or DEFAULT_PROFILE
    if "/" in choice or choice.endswith(".toml"):
        return Path(choice)
    return PROFILE_DIR / f"{choice}.toml"


def load(name_or_path: str | None = None, environ: Mapping[str, str] = os.environ) -> Site:
    path = resolve(name_or_path, environ)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
        raise ProfileError(f"site profile {str(path)!r} not found; use a path or one of: {known}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    return from_mapping(data, str(path))
