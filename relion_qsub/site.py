"""The site profile: what a cluster's partitions, GPUs and scratch look like, and what relion-qsub enforces.

A profile is a TOML file read with tomllib. The packaged profiles live in
``relion_qsub/profiles/``; ``biowulf`` (the NIH values from the seed page) is the default. A site selects its own with
``--site NAME|PATH`` or ``RELION_QSUB_SITE`` (set by the environment module). Errors name the file, the key and
what is expected.

This module is on the submit path (``relion-qsub`` as RELION's Queue submit command, ``relion-qsub check``), so it
reads only what the rules need and stays cheap to import: slotted value classes instead of dataclasses, no typing at
run time, and the parsed TOML cached (``load``). The sections for templates, recommendations and the environment
module are parsed on first use, by ``relion_qsub.profile`` (``Site.profile``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .errors import ProfileError

# Not `from typing import TYPE_CHECKING`: importing typing alone costs the submit path ~2 ms (mypy knows this idiom).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .profile import (
        GuiField,
        Launcher,
        Limits,
        MemoryPolicy,
        NodeType,
        Profile,
        Queue,
        Recipe,
        TemplateSet,
    )

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


class _Value:
    """A small immutable-by-convention record: equality, repr and ``replace`` over its ``__slots__``.

    (What a frozen dataclass gives, without importing dataclasses and inspect on the submit path.)
    """

    __slots__: tuple[str, ...] = ()

    def _items(self) -> tuple[tuple[str, Any], ...]:
        return tuple((name, getattr(self, name)) for name in self.__slots__ if not name.startswith("_"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Value) and type(self) is type(other) and self._items() == other._items()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self._items())})"

    def replace(self, **changes: Any) -> Any:
        return type(self)(**{**dict(self._items()), **changes})


class Partition(_Value):
    __slots__ = ("gpu_types", "gpus_per_node", "name")

    def __init__(self, name: str, gpu_types: tuple[str, ...] = (), gpus_per_node: int = 0) -> None:
        self.name, self.gpu_types, self.gpus_per_node = name, gpu_types, gpus_per_node


class Scratch(_Value):
    __slots__ = ("gres", "job_dir", "min_gb", "monitor_interval", "root")

    def __init__(
        self,
        gres: str = "lscratch",
        root: str = "/lscratch",
        job_dir: str = "/lscratch/$SLURM_JOB_ID",
        min_gb: int = 5,
        monitor_interval: int = 0,  # seconds between lscratch_mon.sh samples in generated templates; 0: not started
    ) -> None:
        self.gres, self.root, self.job_dir, self.min_gb = gres, root, job_dir, min_gb
        self.monitor_interval = monitor_interval


class Submit(_Value):
    __slots__ = (
        "attempts",
        "backoff",
        "requeue",
        "sbatch",
        "scancel",
        "scontrol",
        "settle",
        "squeue",
        "timeout",
        "transient",
        "watch",
        "watch_options",
    )

    def __init__(
        self,
        sbatch: str = "sbatch",
        squeue: str = "squeue",
        timeout: float = 60.0,
        attempts: int = 4,
        backoff: tuple[float, ...] = (2.0, 5.0, 15.0),
        transient: tuple[str, ...] = DEFAULT_TRANSIENT,
        scancel: str = "scancel",
        settle: float = 3.0,  # seconds between the two squeue answers that must agree "no job" before a retry
        scontrol: str = "scontrol",
        requeue: bool = False,  # False: every job gets --no-requeue (a requeued job would rerun after FAILURE)
        watch: bool = True,  # submit the end-watcher job (relion_qsub/watch.py) beside each RELION job
        watch_options: tuple[str, ...] = (),  # extra sbatch options for the watcher (e.g. a quick partition)
    ) -> None:
        self.sbatch, self.squeue, self.scancel, self.timeout = sbatch, squeue, scancel, timeout
        self.attempts, self.backoff, self.transient, self.settle = attempts, backoff, transient, settle
        self.scontrol, self.requeue, self.watch, self.watch_options = scontrol, requeue, watch, watch_options


# The rich sections a Site hands out from its Profile (templates, recommend, module).
_RICH = (
    "node_types",
    "fields",
    "limits",
    "queue",
    "launcher",
    "memory",
    "tools",
    "recipes",
    "template_sets",
    "exclusive",
)


class Site(_Value):
    __slots__ = (
        "_profile",
        "gpu_safe_threads",
        "launchers",
        "name",
        "partitions",
        "path",
        "policy",
        "raw",
        "scratch",
        "submit",
        "typo_distance",
    )

    def __init__(
        self,
        name: str,
        path: str,
        partitions: Mapping[str, Partition] | None = None,
        gpu_safe_threads: Mapping[str, int] | None = None,
        scratch: Scratch | None = None,
        policy: Mapping[str, str] | None = None,
        typo_distance: int = 2,
        launchers: tuple[str, ...] = ("RELION_STD_LAUNCHER", "relion-launch"),
        submit: Submit | None = None,
        raw: Mapping[str, Any] | None = None,
    ) -> None:
        self.name, self.path = name, path
        self.partitions: Mapping[str, Partition] = partitions or {}
        self.gpu_safe_threads: Mapping[str, int] = gpu_safe_threads or {}
        self.scratch = scratch or Scratch()
        self.policy: Mapping[str, str] = policy if policy is not None else dict(DEFAULT_POLICY)
        self.typo_distance = typo_distance
        self.launchers = launchers
        self.submit = submit or Submit()
        self.raw: Mapping[str, Any] = raw or {}
        self._profile: Profile | None = None

    def _items(self) -> tuple[tuple[str, Any], ...]:
        return tuple(item for item in super()._items() if item[0] != "raw")

    def replace(self, **changes: Any) -> Site:
        """A copy with other values; rich keys (``queue=``, ``limits=`` ...) replace parts of the profile."""
        rich = {key: changes.pop(key) for key in list(changes) if key in _RICH}
        new = Site(**{**dict(self._items()), "raw": self.raw, **changes})
        if rich:
            import dataclasses

            new._profile = dataclasses.replace(self.profile, **rich)
        else:
            new._profile = self._profile
        return new

    def action(self, check: str) -> str:
        return self.policy.get(check, DEFAULT_POLICY.get(check, "warn"))

    def gpu_partitions(self) -> list[str]:
        return sorted(p.name for p in self.partitions.values() if p.gpu_types)

    @property
    def profile(self) -> Profile:
        """The rich sections, parsed and validated on first use."""
        if self._profile is None:
            from .profile import build

            self._profile = build(self.raw, self)
        return self._profile

    @property
    def node_types(self) -> Mapping[str, NodeType]:
        return self.profile.node_types

    @property
    def fields(self) -> tuple[GuiField, ...]:
        return self.profile.fields

    @property
    def limits(self) -> Limits:
        return self.profile.limits

    @property
    def queue(self) -> Queue:
        return self.profile.queue

    @property
    def launcher(self) -> Launcher:
        return self.profile.launcher

    @property
    def memory(self) -> MemoryPolicy:
        return self.profile.memory

    @property
    def tools(self) -> Mapping[str, str]:
        return self.profile.tools

    @property
    def recipes(self) -> Mapping[str, Recipe]:
        return self.profile.recipes

    @property
    def template_sets(self) -> tuple[TemplateSet, ...]:
        return self.profile.template_sets

    @property
    def exclusive(self) -> tuple[str, ...]:
        return self.profile.exclusive

    def field_for(self, option: str) -> GuiField | None:
        """The GUI field whose value goes into ``--<option>`` ("" = the first SBATCH Directives box)."""
        return self.profile.field_for(option)


class Reader:
    """Typed access to a TOML table that reports mistakes as ``file: key: expected ..., got ...``."""

    def __init__(self, path: str, data: Mapping[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix = path, data, prefix

    def fail(self, key: str, expected: str, got: object) -> ProfileError:
        return ProfileError(f"{self.path}: {self.prefix}{key}: expected {expected}, got {got!r}")

    def table(self, key: str) -> Reader:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        return Reader(self.path, value, f"{self.prefix}{key}.")

    def text(self, key: str, default: str, choices: tuple[str, ...] = ()) -> str:
        value = self.data.get(key, default)
        if not isinstance(value, str) or (choices and value not in choices):
            raise self.fail(key, "one of " + ", ".join(choices) if choices else "a string", value)
        return value

    def key_of(self, key: str, table: str, keys: list[str]) -> str:
        """A string naming an entry of another table (``[partitions]``, ``[recipes]`` ...)."""
        value = self.text(key, "")
        if value not in keys:
            raise self.fail(key, f"one of the [{table}] ({', '.join(keys)})", value)
        return value

    def integer(self, key: str, default: int, minimum: int = 0, maximum: int | None = None, why: str = "") -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, f"a whole number >= {minimum}", value)
        if maximum is not None and value > maximum:
            raise self.fail(key, f"a whole number <= {maximum}{why}", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
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
        return tuple((label, table.text(label, "")) for label in table.keys())

    def number(self, key: str, default: float) -> float:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail(key, "a number >= 0", value)
        return float(value)

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of strings", value)
        return tuple(value)

    def numbers(self, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
        value = self.data.get(key, list(default))
        if not isinstance(value, list) or not all(isinstance(v, int | float) and v >= 0 for v in value):
            raise self.fail(key, "a list of numbers >= 0", value)
        return tuple(float(v) for v in value)

    def keys(self) -> list[str]:
        return list(self.data)


def from_mapping(data: Mapping[str, Any], path: str) -> Site:
    top = Reader(path, data)
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
        s.integer("monitor_interval", 0),
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
        sub.text("scancel", "scancel"),
        sub.number("settle", 3.0),
        sub.text("scontrol", "scontrol"),
        sub.boolean("requeue", False),
        sub.boolean("watch", True),
        sub.strings("watch_options", ()),
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


def _cache_file(path: Path, environ: Mapping[str, str]) -> Path | None:
    """Where the parsed form of ``path`` is cached, keyed by the file's identity and change time."""
    if environ.get("RELION_QSUB_NO_CACHE"):
        return None
    import zlib

    st = path.stat()
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = f"{zlib.crc32(str(path.resolve()).encode()):08x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"
    return Path(base) / "relion-qsub" / f"profile-{key}.marshal"


def _not_found(path: Path) -> ProfileError:
    known = ", ".join(sorted(p.stem for p in PROFILE_DIR.glob("*.toml")))
    return ProfileError(f"site profile {str(path)!r} not found; use a path or one of: {known}")


def read_data(path: Path, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The profile's TOML as a dict. tomllib costs more start-up than all of `relion-qsub check` otherwise does,
    so the parsed dict is cached with marshal (stdlib, already loaded) under $XDG_CACHE_HOME/relion-qsub; the key
    changes whenever the file does, and any problem with the cache just means parsing the file again."""
    import marshal

    try:
        cache = _cache_file(path, environ)
    except FileNotFoundError as exc:
        raise _not_found(path) from exc
    except OSError:
        cache = None
    if cache is not None:
        try:
            data = marshal.loads(cache.read_bytes())
            if isinstance(data, dict):
                return data
        except (OSError, EOFError, ValueError, TypeError):
            pass
    import tomllib

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise _not_found(path) from exc
    except IsADirectoryError as exc:
        raise ProfileError(f"site profile {str(path)!r} is a directory; give a .toml file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    if cache is not None:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_bytes(marshal.dumps(data))
            os.replace(tmp, cache)
        except (OSError, ValueError):  # unwritable cache, or values marshal cannot store (TOML dates)
            pass
    return data


def load(name_or_path: str | None = None, environ: Mapping[str, str] = os.environ, full: bool = False) -> Site:
    """The site profile. ``full``: also parse and validate the sections the submit path does not use."""
    path = resolve(name_or_path, environ)
    site = from_mapping(read_data(path, environ), str(path))
    if full:
        _ = site.profile
    return site
