"""Which profile file is meant, and reading it: the ``--site`` option, the search, and the cache.

The search (:func:`resolve`) and the ``--site`` help text (:data:`SITE_HELP`, added to a parser by
:func:`add_site_option`) are written here once, side by side, so the help says what the search does.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ProfileError
from .site import Site, from_mapping

if TYPE_CHECKING:
    import argparse

_HERE = Path(os.path.dirname(os.path.abspath(__file__)))  # not resolve(): an lstat per component
PROFILE_DIR = _HERE.parent / "profiles"
INSTALLED_DIR = _HERE.parent.parent / "etc"  # <prefix>/etc/<site>.toml beside <prefix>/relion_qsub (module install)
# The modules whose declarations decide what a checked profile holds (its filled-in defaults): the cache key.
_DECLARING = tuple(str(_HERE / name) for name in ("keys.py", "declare.py", "site.py", "recipes.py"))
DEFAULT_PROFILE = "biowulf"
SITE_ENV = "RELION_QSUB_SITE"

SITE_HELP = (
    "site profile: a path (it has a '/' or ends in .toml), or a NAME looked up as <prefix>/etc/NAME.toml (an "
    "installation's profile), then as a bundled profile (relion_qsub/profiles/NAME.toml); "
    f"default: ${SITE_ENV} (as for --site), else the one profile in <prefix>/etc/ (an error if it has several), "
    f"else {DEFAULT_PROFILE}"
)


def add_site_option(parser: argparse._ActionsContainer) -> None:
    """``--site PROFILE`` (dest ``site``, default None: :func:`resolve` then does the search)."""
    parser.add_argument("--site", metavar="PROFILE", help=SITE_HELP)


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
    """The profile file, as :data:`SITE_HELP` says."""
    choice = name_or_path or environ.get(SITE_ENV)
    if not choice:
        installed = installed_profiles()
        if len(installed) == 1:
            return installed[0]
        if installed:
            raise ProfileError(
                f"{INSTALLED_DIR} holds {len(installed)} site profiles; choose one with --site or {SITE_ENV}: "
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
    declarations' (new declarations may fill in other defaults)."""
    if environ.get("RELION_QSUB_NO_CACHE"):
        return None
    st = path.stat()
    declared = sum(os.stat(name).st_mtime_ns for name in _DECLARING)
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    # Device and inode name the file on this machine, whatever path it was reached by (no hash of the resolved path:
    # zlib's import and resolve()'s lstat walk cost the submit path half a millisecond).
    key = f"{st.st_dev:x}-{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"
    return Path(base) / "relion-qsub" / f"profile-{key}-{declared & 0xFFFFFFFF:x}.marshal"


def _not_found(path: Path) -> ProfileError:
    return ProfileError(f"site profile {str(path)!r} not found; use a path or one of: {', '.join(known_profiles())}")


def _parse(path: Path) -> dict[str, Any]:
    """The file's TOML checked against the declarations, with every default filled in."""
    import tomllib

    from .keys import check  # only when the cache cannot answer: tomllib and the checker cost start-up

    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as exc:
        raise _not_found(path) from exc
    except IsADirectoryError as exc:
        raise ProfileError(f"site profile {str(path)!r} is a directory; give a .toml file") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}") from exc
    return check(data, str(path))


def read_data(path: Path, environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """The profile's checked TOML. tomllib costs more start-up than all of `relion-qsub check` otherwise does, so
    the checked dict is cached with marshal (stdlib, already loaded) under $XDG_CACHE_HOME/relion-qsub; the key
    changes whenever the file (or a declaration) does, and any problem with the cache just means reading the file
    again. Only a profile that passed the checker is cached."""
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
    data = _parse(path)
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
    """The site profile. ``full``: also build and check the sections the submit path does not use."""
    path = resolve(name_or_path, environ)
    site = from_mapping(read_data(path, environ), str(path))
    if full:
        _ = site.profile
    return site
