"""Settings for the whole run (tests and the package's doctests), applied before JAX starts.

* XLA:CPU compiles with its cheapest backend passes and its older (LLVM IR) fusion emitters,
  which compile small programs faster than the MLIR ones. The suite runs thousands of tiny
  programs once each, so compile time, not run time, is what it spends; the results are the
  same. Appended to any ``XLA_FLAGS`` already set, and inherited by the subprocesses some tests
  start (the 8-device and the two-process checks add their own flags after these).
* Strict dtype promotion and rank promotion, as in the test suite (``tests/conftest.py``).
* The optional integrations import their extras (``jaxseg_losses[nnx]``, ``jaxseg_losses[clu]``):
  without them their doctests are not collected, as their tests skip.
"""

import importlib.util
import os

FAST_COMPILE_FLAGS = (
    "--xla_backend_optimization_level=0",
    "--xla_llvm_disable_expensive_passes=true",
    "--xla_cpu_use_fusion_emitters=false",
)
# A flag already set (with any value) is left as it is.
_flags = os.environ.get("XLA_FLAGS", "").split()
_names = {flag.split("=", 1)[0] for flag in _flags}
os.environ["XLA_FLAGS"] = " ".join(
    [*_flags, *(flag for flag in FAST_COMPILE_FLAGS if flag.split("=", 1)[0] not in _names)]
)

import jax  # noqa: E402  (after XLA_FLAGS: XLA reads them when the backend starts)

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")

collect_ignore = [
    f"jaxseg_losses/{module}"
    for module, package in (("nnx.py", "flax"), ("clu.py", "clu"))
    if importlib.util.find_spec(package) is None
]
