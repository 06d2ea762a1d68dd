"""Moved to relion_qsub.sitetools.relionfill (``relion-qsub site validate --live`` fills templates with it)."""

from relion_qsub.sitetools.relionfill import *  # noqa: F403
from relion_qsub.sitetools.relionfill import __all__  # noqa: F401
