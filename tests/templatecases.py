"""Moved to relion_qsub.sitetools.fillcases (``relion-qsub site validate --live`` tries every case)."""

from relion_qsub.sitetools.fillcases import INSTALL_DIR, Case, cases, fill_case, render, write_project

__all__ = ["INSTALL_DIR", "Case", "cases", "fill_case", "render", "write_project"]
