"""Speed and memory benchmarks of jaxseg_losses against optax and plain-jnp implementations.

Run ``python benchmarks/run.py [--quick] [--out DIR]`` from the repository root; see README.md.
"""
