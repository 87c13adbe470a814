"""The README's quickstart runs as written: its first Python block as is, its second with a
one-layer NNX model and two validation batches standing in for the user's."""

import re
from pathlib import Path

import pytest

nnx = pytest.importorskip("flax.nnx")
pytest.importorskip("optax")

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_the_readme_has_a_quickstart_and_an_nnx_loop():
    blocks = python_blocks()
    assert len(blocks) == 2
    assert "nnx.MultiMetric" in blocks[1] and "@nnx.jit" in blocks[1]


def test_the_quickstart_runs(capsys):
    import jax

    class Model(nnx.Module):
        def __init__(self, rngs):
            self.conv = nnx.Conv(1, 5, (3, 3), rngs=rngs)

        def __call__(self, x):
            return self.conv(x)

    def batch(seed):
        images = jax.random.normal(jax.random.key(seed), (2, 16, 16, 1))
        return images, jax.random.randint(jax.random.key(seed + 9), (2, 16, 16), 0, 5)

    first, second = python_blocks()
    namespace: dict = {}
    exec(first, namespace)
    assert namespace["per_image"].shape == (8,)
    namespace.update(model=Model(nnx.Rngs(0)), val_batches=[batch(0), batch(1)])
    exec(second, namespace)
    images, labels = batch(2)
    # optax's Adam mixes Python floats and int32 counts: standard promotion, as users run it.
    with jax.numpy_dtype_promotion("standard"):
        total, parts = namespace["train_step"](
            namespace["model"], namespace["optimizer"], images, labels
        )
    assert set(parts) == {"ce", "dice"} and float(total) > 0
    computed = namespace["metrics"].compute()
    assert set(computed) == {"iou", "dice", "hd95"}
    # Against the plain accumulator over the same batches (the model before the train step).
    jsl = namespace["jsl"]
    model = Model(nnx.Rngs(0))
    plain = jsl.metrics.ConfusionMatrixAccumulator.empty(5)
    for images_, labels_ in (batch(0), batch(1)):
        plain = plain.update(model(images_), labels_, ignore_index=255)
    expected = plain.compute()
    assert float(computed["iou"]) == pytest.approx(float(expected["mean_iou"]), rel=1e-6)
    assert float(computed["dice"]) == pytest.approx(float(expected["mean_dice"]), rel=1e-6)
    # The printed dict is the metrics' own: the loop's values are the whole set's.
    assert "'iou'" in capsys.readouterr().out
