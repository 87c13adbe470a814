"""The rule cases derive from the table of built-in losses: a row added to the table is covered.

A toy loss made with ``jsl.define_loss`` and appended to a copy of the table becomes a rule case
(and passes a rule), gets a single-example variant from ``per_sample.single_example``, and is a
``combine`` term by name once registered, without any change to the tests or the package.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxseg_losses as jsl
from jaxseg_losses import registry
from tests.helpers import assert_close
from tests.rules.cases import VARIANTS, rule_cases


@jsl.define_loss
def toy_loss(*, scale: float = 1.0) -> jsl.LossDefinition:
    """Computes ``scale`` times the mean probability missed on each pixel's label.

    Args:
      scale: a factor on the loss.

    Returns:
      The loss.
    """

    def pixel_loss(inputs: jsl.Inputs):
        return scale * (1.0 - jnp.exp(inputs.label_log_probability()))

    return jsl.LossDefinition.pixel_mean(pixel_loss)


TOY_ROW = registry.BuiltinLoss(toy_loss, "toy", {"toy": {}})  # a family of its own


def numpy_toy(logits, labels, mask):
    """The toy loss from its docstring: ``1 - p[label]``, mean over the valid pixels."""
    x = np.asarray(logits, np.float64)
    p = np.exp(x - x.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    missed = 1.0 - np.take_along_axis(p, labels[..., None], -1)[..., 0]
    sums, counts = (mask * missed).sum((1, 2)), mask.sum((1, 2))
    per_sample = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return sums.sum() / counts.sum(), per_sample


def test_every_row_of_the_table_is_a_case_with_its_activation_and_family():
    cases = {case.name: case for case in rule_cases()}
    for entry in registry.BUILTIN_LOSSES:
        case = cases[entry.name]
        assert case.binary == (entry.activations == ("sigmoid",)), entry.name
        assert case.sum_of_terms == (entry.family == "pairs"), entry.name
    assert len(cases) == len(registry.BUILTIN_LOSSES) + len(VARIANTS)


def test_a_row_added_to_the_table_becomes_a_case_that_passes_a_rule(monkeypatch):
    table = (*registry.BUILTIN_LOSSES, TOY_ROW)
    assert rule_cases(table)[len(registry.BUILTIN_LOSSES)].name == "toy_loss"
    # The default table is read when the cases are built, so a row added to it is picked up.
    monkeypatch.setattr(registry, "BUILTIN_LOSSES", table)
    case = next(c for c in rule_cases() if c.name == "toy_loss")
    assert not case.binary and not case.sum_of_terms
    # Rule 3 on the new case: the last sample masked is the last sample sliced away.
    logits, labels, _ = case.data(0)
    mask = np.ones(labels.shape, np.float32)
    mask[2] = 0.0
    masked, sliced = jax.jit(lambda x, y, m: (case.value(x, y, mask=m), case.value(x[:2], y[:2])))(
        logits, labels, mask
    )
    assert_close(masked, sliced)
    assert_close(masked, numpy_toy(logits, labels, mask)[0])


def test_a_new_loss_gets_a_per_sample_variant_and_a_combine_name(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    jsl.register_loss("toy", toy_loss)
    logits, labels, mask = rule_cases([TOY_ROW])[0].data(1)
    single = jsl.per_sample.single_example(toy_loss)
    combined = jsl.combine("toy+dice")

    @jax.jit
    def run(x, y, m):
        return (
            jax.vmap(lambda a, b, c: single(a, b, mask=c))(x, y, m),
            combined(x, y, mask=m),
            toy_loss(x, y, mask=m) + jsl.dice_loss(x, y, mask=m),
        )

    per_sample, (total, parts), direct = run(logits, labels, mask)
    mean, per_sample_want = numpy_toy(logits, labels, mask)
    assert_close(per_sample, per_sample_want)
    assert_close(parts["toy"], mean)
    assert_close(total, direct)
    with pytest.raises(ValueError, match="already registered"):
        jsl.register_loss("toy", toy_loss)
