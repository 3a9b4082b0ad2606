"""The dg defs folder: each sub-folder with a ``defs.yaml`` is a component (docs/dg.md)."""
