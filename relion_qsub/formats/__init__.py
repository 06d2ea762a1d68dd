"""File formats RELION projects are made of, read without third-party parsers: MRC headers, STAR tables."""
