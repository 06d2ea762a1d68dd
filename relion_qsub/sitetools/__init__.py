"""Site tools, run by HPC staff: render templates, write environment modules, recommend GUI values.

They read the whole site profile (``relion_qsub.profile``) and may import what they like (Jinja2, argparse):
none of them is on the submit path.
"""
