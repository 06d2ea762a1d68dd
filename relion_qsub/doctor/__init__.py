"""`relion-qsub doctor`: find the known problems of a RELION project (images, pipeline, lock, ended jobs).

One module per kind of check (``images``, ``pipeline``, ``job``), the shared ``Finding`` in ``finding``, the command
in ``main``. Off the submit path: these may import what they like.
"""
