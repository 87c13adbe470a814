"""Doctests in the package run under the same strict JAX settings as the test suite."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")
