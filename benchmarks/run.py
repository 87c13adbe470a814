"""Runs the benchmark matrix: ``python benchmarks/run.py [--quick] [--out DIR] [--peak-gbps N]``.

Writes ``results.md`` (tables), ``results.json`` (every measurement) and ``results.png`` (cost
against size, ratios to optax) under ``--out`` (default ``benchmarks/results``). See README.md.
"""

import sys
from pathlib import Path

# Run as a script from anywhere: make the repository root (the ``benchmarks`` package and, when
# not installed, ``jaxseg_losses``) importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import suite

if __name__ == "__main__":
    suite.main()
