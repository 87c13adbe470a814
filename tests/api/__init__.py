"""The public API: names, signatures, docstrings, the snapshot, the package layout."""
