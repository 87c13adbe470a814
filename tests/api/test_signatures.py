"""Signatures read the alias ``ArrayLike``, not the Union it expands to (help() and the docs)."""

import inspect

import jax
import pytest

import jaxseg_losses as jsl


def _public_functions():
    for module, prefix in (
        (jsl, "jsl."),
        (jsl.metrics, "jsl.metrics."),
        (jsl.per_sample, "jsl.per_sample."),
        (jsl.accumulate, "jsl.accumulate."),
    ):
        for name in getattr(module, "__all__", dir(module)):
            obj = getattr(module, name)
            if callable(obj) and not name.startswith("_") and not inspect.ismodule(obj):
                yield prefix + name, obj


def test_dice_loss_signature_names_array_like():
    signature = inspect.signature(jsl.dice_loss)
    text = str(signature)
    assert "Union" not in text
    assert "ArrayLike" in str(signature.parameters["logits"].annotation)
    assert "ArrayLike" in str(signature.parameters["smooth"].annotation)
    assert "ArrayLike" in str(signature.parameters["mask"].annotation)


@pytest.mark.parametrize(("name", "fn"), list(_public_functions()))
def test_no_expanded_union_in_public_signatures(name, fn):
    try:
        text = str(inspect.signature(fn))
    except (TypeError, ValueError):
        pytest.skip(f"{name} has no signature")
    assert "Union[" not in text, f"{name}{text}"
    assert "numpy.ndarray" not in text, f"{name}{text}"


def test_define_loss_names_array_like_of_a_factory_without_string_annotations():
    # This module has no `from __future__ import annotations`: the factory's annotation is the
    # Union object itself, which the generated signature names as the alias.
    @jsl.define_loss
    def plain_loss(
        *, scale: jax.typing.ArrayLike = 1.0, offset: jax.typing.ArrayLike | None = None
    ):
        """A loss."""
        return jsl.dice_loss.definition()

    text = str(inspect.signature(plain_loss))
    assert "scale: 'ArrayLike' = 1.0" in text
    assert "offset: 'ArrayLike | None' = None" in text
    assert "Union" not in text
