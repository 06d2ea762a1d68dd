"""The site profile: what a cluster's partitions, GPUs and scratch look like, and what relion-qsub enforces.

A profile is a TOML file read with tomllib and checked against ``relion_qsub.schema`` (every key, its type and
default; docs/profile-reference.md). The packaged profiles live in ``relion_qsub/profiles/``. The profile used is
``--site NAME|PATH``, else ``RELION_QSUB_SITE`` (set by the environment module), else the site an installation was
built for (``<prefix>/etc/<site>.toml``), else ``biowulf`` (the NIH values from the seed page). Errors name the
file, the key and what is expected.

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
from .reader import Reader

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

_HERE = Path(os.path.dirname(os.path.abspath(__file__)))  # not resolve(): an lstat per component
PROFILE_DIR = _HERE / "profiles"
INSTALLED_DIR = _HERE.parent / "etc"  # <prefix>/etc/<site>.toml beside <prefix>/relion_qsub (module install)
SCHEMA_FILE = str(_HERE / "schema.py")
DEFAULT_PROFILE = "biowulf"


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
    """One Slurm partition and what its largest node has (0 / empty: unknown, so not checked)."""

    __slots__ = (
        "cpus",
        "default",
        "features",
        "gpu_types",
        "gpus_per_node",
        "max_nodes",
        "max_time",
        "memory",
        "name",
        "nodes",
        "scratch_gb",
    )

    def __init__(
        self,
        name: str,
        gpu_types: tuple[str, ...] = (),
        gpus_per_node: int = 0,
        *,
        default: bool = False,
        max_time: str = "",
        max_nodes: int = 0,
        nodes: int = 0,
        cpus: int = 0,
        memory: str = "",
        scratch_gb: int = 0,
        features: tuple[str, ...] = (),
    ) -> None:
        # The keyword defaults mean "unknown" (a partition named in a test); a profile's values come from the
        # schema, which fills every key (relion_qsub/schema.py).
        self.name, self.gpu_types, self.gpus_per_node, self.default = name, gpu_types, gpus_per_node, default
        self.max_time, self.max_nodes, self.nodes, self.cpus = max_time, max_nodes, nodes, cpus
        self.memory, self.scratch_gb, self.features = memory, scratch_gb, features


class Scratch(_Value):
    __slots__ = ("gres", "job_dir", "min_gb", "monitor_interval", "root")

    def __init__(self, gres: str, root: str, job_dir: str, min_gb: int, monitor_interval: int) -> None:
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
        sbatch: str,
        squeue: str,
        timeout: float,
        attempts: int,
        backoff: tuple[float, ...],
        transient: tuple[str, ...],
        scancel: str,
        settle: float,
        scontrol: str,
        requeue: bool,  # False: every job gets --no-requeue (a requeued job would rerun after FAILURE)
        watch: bool,  # submit the end-watcher job (relion_qsub/watch.py) beside each RELION job
        watch_options: tuple[str, ...],  # extra sbatch options for the watcher (e.g. a quick partition)
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
        "site_options",
        "submit",
        "typo_distance",
    )

    def __init__(
        self,
        name: str,
        path: str,
        partitions: Mapping[str, Partition],
        gpu_safe_threads: Mapping[str, int],
        scratch: Scratch,
        policy: Mapping[str, str],
        typo_distance: int,
        launchers: tuple[str, ...],
        submit: Submit,
        raw: Mapping[str, Any] | None = None,
        site_options: Mapping[str, str] | None = None,
    ) -> None:
        self.name, self.path = name, path
        self.partitions: Mapping[str, Partition] = partitions
        self.gpu_safe_threads: Mapping[str, int] = gpu_safe_threads
        self.scratch = scratch
        self.policy: Mapping[str, str] = policy  # the [policy] table as written (relion_qsub.checks reads it)
        self.typo_distance = typo_distance
        self.launchers = launchers
        self.submit = submit
        self.raw: Mapping[str, Any] = raw or {}
        # The site's plugin (SPANK) options sbatch accepts, name -> its argument: "none", "required" or "optional".
        self.site_options: Mapping[str, str] = site_options or {}
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

    def gpu_partitions(self) -> list[str]:
        return sorted(p.name for p in self.partitions.values() if p.gpu_types)

    def field_labels(self) -> list[tuple[str, str]]:
        """(label, sbatch option) of each extra GUI box, RELION_QSUB_EXTRA1 first; read without building the
        rich profile (the submit path names boxes in its messages)."""
        fields = self.raw.get("fields", [])
        return [(str(f.get("label", "")), str(f.get("option", ""))) for f in fields if isinstance(f, dict)]

    def default_partition(self) -> Partition | None:
        """Where a job without --partition lands (Slurm's Default=YES), if the profile says."""
        return next((p for p in self.partitions.values() if p.default), None)

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


def _partition(parts: Reader, name: str, safe: Mapping[str, int]) -> Partition:
    p = parts.table(name)
    types = p.strings("gpu_types")
    for t in types:
        if t not in safe:
            raise ProfileError(
                f"{parts.path}: partitions.{name}.gpu_types: GPU type {t!r} has no [gpu_types.{t}] table"
            )
    return Partition(
        name,
        types,
        p.integer("gpus_per_node"),
        default=p.boolean("default"),
        max_time=p.text("max_time"),
        max_nodes=p.integer("max_nodes"),
        nodes=p.integer("nodes"),
        cpus=p.integer("cpus"),
        memory=p.text("memory"),
        scratch_gb=p.integer("scratch_gb"),
        features=p.strings("features"),
    )


def from_mapping(data: Mapping[str, Any], path: str) -> Site:
    """The submit path's part of a profile ``data`` that ``schema.check`` filled in."""
    top = Reader(path, data)
    gpu_types = top.table("gpu_types")
    safe = {name: gpu_types.table(name).integer("safe_threads", minimum=1) for name in gpu_types.keys()}
    parts = top.table("partitions")
    partitions = {name: _partition(parts, name, safe) for name in parts.keys()}
    s = top.table("scratch")
    scratch = Scratch(
        s.text("gres"), s.text("root"), s.text("job_dir"), s.integer("min_gb"), s.integer("monitor_interval")
    )
    pol = top.table("policy")
    # Kept raw: the checks declare their keys and validate this table (relion_qsub.checks.registry.policy).
    policy = {key: pol.text(key) for key in pol.keys() if key != "typo_distance"}
    sub = top.table("submit")
    submit = Submit(
        sub.text("sbatch"),
        sub.text("squeue"),
        sub.number("timeout"),
        sub.integer("attempts", minimum=1),
        sub.numbers("backoff"),
        sub.strings("transient"),
        sub.text("scancel"),
        sub.number("settle"),
        sub.text("scontrol"),
        sub.boolean("requeue"),
        sub.boolean("watch"),
        sub.strings("watch_options"),
    )
    return Site(
        name=top.text("name", Path(path).stem),
        path=path,
        partitions=partitions,
        gpu_safe_threads=safe,
        scratch=scratch,
        policy=policy,
        typo_distance=pol.integer("typo_distance"),
        launchers=top.strings("launchers"),
        submit=submit,
        raw=data,
        site_options=_site_options(top),
    )


def _site_options(top: Reader) -> dict[str, str]:
    """``[site_options]``: ``gpu_cmode = "required"``; a name is what follows ``--`` (no typo rule touches it)."""
    table = top.table("site_options")
    found = {}
    for name in table.keys():
        if not name or name.startswith("-") or any(c.isspace() or c == "=" for c in name):
            raise table.fail(name, "an option name without '--' (e.g. gpu_cmode)", name)
        found[name] = table.text(name, "required", ("none", "required", "optional"))
    return found


def installed_profiles() -> list[Path]:
    """The profiles an installation was built for: ``<prefix>/etc/*.toml`` beside the installed package
    (``relion-qsub module install`` writes ``etc/<site>.toml``; a source checkout has no ``etc/``)."""
    try:
        names = os.listdir(INSTALLED_DIR)
    except OSError:
        return []
    return sorted(INSTALLED_DIR / n for n in names if n.endswith(".toml") and not n.startswith("."))


def known_profiles() -> list[str]:
    """Every profile ``--site`` could mean: the installed ones (as paths), then the bundled names."""
    return [*map(str, installed_profiles()), *sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))]


def resolve(name_or_path: str | None = None, environ: Mapping[str, str] = os.environ) -> Path:
    """The profile file: ``--site``, else ``$RELION_QSUB_SITE``, else the installed site, else the bundled default.

    A name is looked up among the installed profiles first, then the bundled ones; a path is taken as it is.
    """
    choice = name_or_path or environ.get("RELION_QSUB_SITE")
    if not choice:
        installed = installed_profiles()
        if len(installed) == 1:
            return installed[0]
        if installed:
            raise ProfileError(
                f"{INSTALLED_DIR} holds {len(installed)} site profiles; choose one with --site or RELION_QSUB_SITE: "
                + ", ".join(map(str, installed))
            )
        choice = DEFAULT_PROFILE
    if "/" in choice or choice.endswith(".toml"):
        return Path(choice)
    installed_path = INSTALLED_DIR / f"{choice}.toml"
    if installed_path.is_file():
        return installed_path
    return PROFILE_DIR / f"{choice}.toml"


def _cache_file(path: Path, environ: Mapping[str, str]) -> Path | None:
    """Where the checked form of ``path`` is cached, keyed by the file's identity and change time, and by the
    schema's (a new schema may fill in other defaults)."""
    if environ.get("RELION_QSUB_NO_CACHE"):
        return None
    st = path.stat()
    schema = os.stat(SCHEMA_FILE).st_mtime_ns
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    # Device and inode name the file on this machine, whatever path it was reached by (no hash of the resolved path:
    # zlib's import and resolve()'s lstat walk cost the submit path half a millisecond).
    key = f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"
    return Path(base) / "relion-qsub" / f"profile-{key}-{schema & 0xFFFFFFFF:x}.marshal"


def _not_found(path: Path) -> ProfileError:
    return ProfileError(f"site profile {str(path)!r} not found; use a path or one of: {', '.join(known_profiles())}")


def read_data(path: Path, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The profile's TOML as a dict, checked against the schema with every default filled in. tomllib costs more
    start-up than all of `relion-qsub check` otherwise does, so the checked dict is cached with marshal (stdlib,
    already loaded) under $XDG_CACHE_HOME/relion-qsub; the key changes whenever the file (or the schema) does, and
    any problem with the cache just means reading the file again. Only a profile that passed the schema is cached."""
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
    from .schema import check

    data = check(data, str(path))
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
