"""The site profile: what a cluster's partitions, GPUs and scratch look like, and what relion-qsub enforces.

A profile is a TOML file (the bundled ones: ``relion_qsub/profiles/``); which one is meant is written in
``files`` (``--site``, :data:`SITE_HELP`). Each key is declared once, and the checker, the typed objects and
docs/profile-reference.md come from that declaration. The modules:

- ``declare``: how a key of a typed section is declared: a ``declare.key`` field (type, default, meaning, range) of
  the section's frozen dataclass (``site.Scratch``, ``site.Partition``, ``recipes.Limits`` ...);
- ``keys``: the whole tree (those sections, and the keys of the sections that are not one object: recipes,
  templates, node types), the checker that fills in defaults, the reference doc;
- ``reader``: typed reads of a checked table, with errors naming the file and key;
- ``site``: what the submit path reads (:class:`Site`: partitions, GPU types, scratch, sbatch, and the
  ``[policy]`` table raw: the checks declare its keys and actions, relion_qsub.checks.registry);
- ``recipes``: what the site tools read (``Site.profile``: node types, GUI boxes, RELION's environment, recipes,
  template sets), built on first use; ``crosscheck``: checks across its sections;
- ``files``: ``--site``, the search for the file, and the cache of its checked form (keyed by device and inode).

The submit path (``relion-qsub SCRIPT``, ``relion-qsub check``) imports this package: the cache spares it tomllib
and the checker, and ``recipes`` is imported only by the site tools.
"""

from __future__ import annotations

from .files import (
    DEFAULT_PROFILE,
    INSTALLED_DIR,
    PROFILE_DIR,
    SITE_ENV,
    SITE_HELP,
    add_site_option,
    installed_profiles,
    known_profiles,
    load,
    resolve,
)
from .site import GpuType, Partition, Scratch, Site, Submit

__all__ = [
    "DEFAULT_PROFILE",
    "INSTALLED_DIR",
    "PROFILE_DIR",
    "SITE_ENV",
    "SITE_HELP",
    "GpuType",
    "Partition",
    "Scratch",
    "Site",
    "Submit",
    "add_site_option",
    "installed_profiles",
    "known_profiles",
    "load",
    "resolve",
]
