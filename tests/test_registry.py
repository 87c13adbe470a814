"""The registry of short names: derived from the table of built-in losses, specifications such as
``"ce:1,iou:0.5"``, and losses registered by the user."""

import functools

import jax
import pytest

import jaxseg_losses as jsl
from jaxseg_losses import registry
from tests.helpers import assert_close, random_batch

SHAPE, C = (2, 6, 5), 4


def test_every_short_name_of_the_table_is_registered_with_its_options():
    for entry in registry.BUILTIN_LOSSES:
        for name, options in entry.names.items():
            fn = jsl.get_loss(name)
            if options:
                assert fn.func is entry.fn and fn.keywords == options, name
            else:
                assert fn is entry.fn, name
    assert jsl.get_loss("bce") is jsl.binary_cross_entropy_loss
    assert jsl.get_loss("poly") is jsl.poly_cross_entropy_loss
    assert jsl.get_loss("topk") is jsl.topk_cross_entropy_loss


def test_bce_is_the_sigmoid_cross_entropy():
    x, y, m = random_batch(6, (2, 4, 5), 1, masked=0.3)
    _, parts = jax.jit(lambda x, y, m: jsl.combine("bce+dice", activation="sigmoid")(x, y, mask=m))(
        x, y, m
    )
    direct = jsl.cross_entropy_loss(x, y, activation="sigmoid", mask=m)
    assert_close(parts["bce"], direct)


def test_parse_loss_spec():
    spec = jsl.parse_loss_spec(" ce:1, iou : 0.5 ")
    assert list(spec) == ["ce", "iou"]
    assert spec["ce"] == (1.0, jsl.cross_entropy_loss)
    assert spec["iou"] == (0.5, jsl.iou_loss)
    assert {k: w for k, (w, _) in jsl.parse_loss_spec("ce+dice").items()} == {
        "ce": 1.0,
        "dice": 1.0,
    }
    assert jsl.parse_loss_spec("log_iou")["log_iou"][1].keywords == {"log": True}
    builtins = {"ce", "focal", "dice", "log_dice", "iou", "log_iou", "tversky", "gdl", "lovasz"}
    assert builtins | {"lovasz_hinge"} <= set(jsl.registered_losses())


def test_spec_string_equals_mapping():
    logits, labels, _ = random_batch(11, SHAPE, C, ignored=0.25)

    @jax.jit
    def both(x, y):
        a = jsl.combine("ce:1,log_iou:0.5", ignore_index=255)(x, y)
        b = jsl.combine({"ce": 1.0, "log_iou": 0.5}, ignore_index=255)(x, y)
        c = jsl.combine(
            {
                "ce": (1.0, jsl.cross_entropy_loss),
                "log_iou": (0.5, functools.partial(jsl.iou_loss, log=True)),
            },
            ignore_index=255,
        )(x, y)
        return a, b, c

    a, b, c = both(logits, labels)
    assert_close(a[0], b[0])
    assert_close(a[0], c[0])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ce+cross", r"Unknown loss 'cross'; registered losses are: .*ce.*dice"),
        ("ce:x", r"Weight 'x' of term 'ce' in 'ce:x' is not a number"),
        ("ce:inf", r"Weight of term 'ce' in 'ce:inf' must be finite"),
        ("ce+ce:2", r"Loss 'ce' appears twice"),
        ("", r"Empty loss specification"),
        ("ce++dice", r"Empty term in loss specification"),
    ],
)
def test_parse_loss_spec_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        jsl.parse_loss_spec(spec)


@pytest.fixture
def scratch_registry():
    before = dict(registry._REGISTRY)
    yield
    registry._REGISTRY.clear()
    registry._REGISTRY.update(before)


@pytest.mark.usefixtures("scratch_registry")
def test_register_loss():
    def half_ce(logits, labels, **options):
        return 0.5 * jsl.cross_entropy_loss(logits, labels, **options)

    assert jsl.register_loss("half_ce", half_ce) is half_ce
    assert jsl.get_loss("half_ce") is half_ce
    with pytest.raises(ValueError, match="already registered"):
        jsl.register_loss("half_ce", half_ce)
    jsl.register_loss("half_ce", jsl.cross_entropy_loss, overwrite=True)
    assert jsl.get_loss("half_ce") is jsl.cross_entropy_loss
    # A partial of a library loss is a registered term like any other.
    soft_dice = functools.partial(jsl.dice_loss, smooth=1e-5)
    jsl.register_loss("eps_dice", soft_dice)
    logits, labels, _ = random_batch(12, SHAPE, C, ignored=0.25)
    _, parts = jax.jit(jsl.combine("eps_dice", ignore_index=255))(logits, labels)
    assert_close(parts["eps_dice"], soft_dice(logits, labels, ignore_index=255))
    for bad in ("Dice", "two words", "", 3):
        with pytest.raises(ValueError, match="lowercase identifier"):
            jsl.register_loss(bad, half_ce)
    with pytest.raises(TypeError, match="`fn` must be callable"):
        jsl.register_loss("nothing", None)
