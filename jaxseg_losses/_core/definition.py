r"""The one description of a loss, and everything derived from it.

Every loss of the library, and any loss a user writes the same way, is described once, at its
source, by a :class:`LossDefinition`: additive per-sample statistics and a finishing step,

.. math::

   S_b = \mathrm{sums}(\text{inputs})_b, \qquad \ell_n = \mathrm{finish}(S)_n,

where :math:`S_b` are sums over the pixels of sample :math:`b` (overlap statistics, sums of
pixel losses and of pixel weights, or a loss per sample) and :math:`\ell_n` is the loss of row
:math:`n`: a sample, or the whole batch once the statistics are pooled. Everything else is
derived from that description, generically, in this module:

* the public function: :func:`define_loss` turns a factory ``(**options) -> LossDefinition``
  into ``loss(logits, labels, *, **options, activation, class_axis, ignore_index, mask,
  aggregate, axis_name, reduction)``, its signature and its docstring;
* ``aggregate``: ``"sample"`` finishes each sample's sums; ``"batch"`` adds them over the batch
  first (or, for a definition whose sums are not additive over pixels, such as the Lovász
  losses, computes them on the batch taken as one sample);
* ``reduction``, one policy for every loss: ``"none"`` gives the ``[B]`` per-sample values,
  ``"sum"`` their sum, ``"mean"`` :math:`\sum_n v_n \ell_n / \sum_n v_n` with :math:`v_n` the
  row's weight (1 for a sample with a valid pixel and 0 for one without, so a fully masked
  sample is left out exactly as if it were sliced away; the summed pixel weights for the
  pixel-wise means, which makes ``"mean"`` PyTorch's pooled mean);
* ``axis_name``: every reduction is a ratio of additive sums, psummed over the mapped axis
  before the ratio is taken;
* :func:`jaxseg_losses.combine` evaluates several definitions on one shared
  :class:`~jaxseg_losses.Inputs`, so statistics they have in common are computed once;
* :func:`jaxseg_losses.accumulate.value_and_grad` adds the same sums over micro-batches;
* :mod:`jaxseg_losses.per_sample` wraps the public function for ``jax.vmap``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import jax
import jax.numpy as jnp

from jaxseg_losses._core.inputs import Inputs

ArrayLike = jax.typing.ArrayLike
Sums = Any  # a pytree of arrays, each with a leading batch axis

# Options that describe the data and how to reduce it: given once to combine(), and to every
# term of it identically.
DATA_OPTIONS = ("activation", "class_axis", "ignore_index", "mask")
SHARED_OPTIONS = (*DATA_OPTIONS, "axis_name", "reduction")
# The one generic option of a single term.
TERM_OPTIONS = ("aggregate",)
ALL_OPTIONS = (*SHARED_OPTIONS, *TERM_OPTIONS)


def divide(numerator: jax.Array, denominator: jax.Array, *, empty: Any = 0.0) -> jax.Array:
    """``numerator / denominator``, and ``empty`` where the denominator is exactly 0.

    The library's one safe division: 0 for an empty mean (no valid pixel, no valid sample), 1 for
    a ratio of two empty sums (a perfect score), NaN for an undefined metric. The double
    ``where`` keeps the gradient finite where the denominator is 0; only an exact 0 counts as
    empty, so a NaN denominator stays NaN.
    """
    nothing = denominator == 0
    safe = jnp.where(nothing, jnp.ones((), denominator.dtype), denominator)
    return jnp.where(nothing, empty, numerator / safe)


# ----------------------------------------------------------------------------------------------
# The description.


@dataclasses.dataclass(frozen=True)
class LossDefinition:
    r"""A loss described by additive per-sample sums and a finishing step.

    This is the one description from which the library derives a loss's public function,
    ``aggregate``, ``reduction``, ``axis_name``, :func:`jaxseg_losses.combine`, micro-batch
    accumulation and the per-sample variant (see :func:`jaxseg_losses.define_loss`).

    .. math::

       S = \mathrm{sums}(\text{inputs}), \qquad \ell = \mathrm{finish}(S), \qquad
       \mathrm{mean} = \frac{\sum_n v_n \ell_n}{\sum_n v_n}, \quad v = \mathrm{weight}(S)

    Attributes:
      sums: ``(inputs: Inputs) -> pytree`` of arrays with a leading batch axis ``[B, ...]``:
        sums over the pixels of each sample (read the inputs' shared statistics, e.g.
        ``inputs.overlap_sums()``, so that terms of a combination share them).
      finish: ``pytree -> [N]``: the loss of each row of the sums, where the rows are the
        ``B`` samples, or one row of batch-pooled sums. It must be finite for rows whose sums
        are all 0 (a sample without valid pixels), which the reductions leave out.
      weight: optional ``pytree -> [N]``: each row's weight in the mean over rows. By default
        1 for a row with a valid pixel and 0 for one without. Pixel-wise means pass the summed
        pixel weights, which makes the mean over samples the mean over pixels.
      pools: whether ``sums`` are sums over pixels, so that the sums of several samples,
        devices or micro-batches add up to those of their union (``aggregate="batch"``,
        ``axis_name`` with batch pooling, micro-batches). ``False`` for a loss that is only a
        function of a whole sample (the Lovász losses sort its pixels): ``aggregate="batch"``
        then evaluates the batch as one sample and cannot be split.

    Examples:
      A mean absolute error of the probabilities, pixel-weighted, as a loss of its own:

      >>> import jax.numpy as jnp
      >>> import jaxseg_losses as jsl
      >>> definition = jsl.LossDefinition.pixel_mean(
      ...     lambda inputs: jnp.abs(inputs.probabilities() - inputs.dense_targets()).sum(-1))
      >>> inputs = jsl.Inputs.prepare(jnp.zeros((1, 2, 2)), jnp.array([[0, 1]]))
      >>> sums = definition.sums(inputs)
      >>> print(definition.finish(sums))
      [1.]
    """

    sums: Callable[[Inputs], Sums]
    finish: Callable[[Sums], jax.Array]
    weight: Callable[[Sums], jax.Array] | None = None
    pools: bool = True

    @classmethod
    def pixel_mean(
        cls,
        pixel_loss: Callable[[Inputs], jax.Array | tuple[jax.Array, jax.Array | None]],
    ) -> "LossDefinition":
        r"""The weighted mean of a per-pixel loss over the valid pixels.

        .. math::

           \ell_b = \frac{\sum_{i \in b} m_i \ell_i}{\sum_{i \in b} m_i u_i}, \qquad
           \mathrm{mean} = \frac{\sum_i m_i \ell_i}{\sum_i m_i u_i}

        with :math:`m` the pixel weights and :math:`u_i` an optional normaliser per pixel (the
        class weight of the label for PyTorch's weighted cross-entropy; 1 by default). The
        mean over samples weighs each sample by :math:`\sum m u`, so it is the mean over all
        valid pixels of the batch (and of all devices and micro-batches).

        Args:
          pixel_loss: ``(inputs) -> [B, P]`` per-pixel losses, or ``(loss, normaliser)``, both
            ``[B, P]``. Pixel weights are applied here: do not multiply by them.

        Returns:
          The :class:`LossDefinition`.

        Examples:
          >>> import jax.numpy as jnp
          >>> import jaxseg_losses as jsl
          >>> nll = jsl.LossDefinition.pixel_mean(lambda inputs: -inputs.label_log_probability())
          >>> inputs = jsl.Inputs.prepare(jnp.zeros((1, 3, 2)), jnp.array([[0, 1, 1]]))
          >>> print(nll.finish(nll.sums(inputs)))   # ln 2
          [0.6931472]
        """

        def sums(inputs: Inputs) -> dict[str, jax.Array]:
            out = pixel_loss(inputs)
            loss, normaliser = out if isinstance(out, tuple) else (out, None)
            weights = inputs.weights
            count = inputs.valid_count() if normaliser is None else jnp.sum(weights * normaliser, 1)
            return {"loss": jnp.sum(weights * loss, axis=1), "weight": count}

        return cls(
            sums=sums,
            finish=lambda s: divide(s["loss"], s["weight"]),
            weight=lambda s: s["weight"],
        )


class LossFunction(Protocol):
    """A loss function made by :func:`define_loss`: callable, and carrying its description."""

    __name__: str
    activations: tuple[str | None, ...]

    def definition(self, **options: Any) -> LossDefinition: ...

    def __call__(self, logits: ArrayLike, labels: ArrayLike, /, **options: Any) -> jax.Array: ...
