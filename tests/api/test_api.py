"""API conventions, enforced by walking the public namespace (as dm_pix's ``api_test.py`` does).

The lists are computed from ``__all__`` (of the package and of its public submodules), so every
function added later is checked without editing this file.
"""

import inspect
import re
import types

import pytest

import jaxseg_losses as jsl
from jaxseg_losses import per_sample

P = inspect.Parameter


def _public(module: types.ModuleType, prefix: str) -> list[tuple[str, object]]:
    """``(qualified name, object)`` for everything in ``module.__all__``, submodules walked."""
    found = []
    for name in module.__all__:
        obj = getattr(module, name)
        if isinstance(obj, types.ModuleType):
            found += _public(obj, f"{prefix}{name}.")
        else:
            found.append((f"{prefix}{name}", obj))
    return found


PUBLIC = dict(_public(jsl, "jsl."))
PUBLIC.update(_public(per_sample, "jsl.per_sample."))
FUNCTIONS = {name: obj for name, obj in PUBLIC.items() if inspect.isfunction(obj)}
CLASSES = {name: obj for name, obj in PUBLIC.items() if inspect.isclass(obj)}
# Losses take (logits, labels); the batch options they share must be spelled the same everywhere.
LOSSES = {
    name: fn
    for name, fn in FUNCTIONS.items()
    if list(inspect.signature(fn).parameters)[:2] == ["logits", "labels"]
}
# Single-example variants document themselves through their batched loss of the same name.
PER_SAMPLE = {
    name: fn
    for name, fn in FUNCTIONS.items()
    if name.startswith("jsl.per_sample.") and hasattr(jsl, name.removeprefix("jsl.per_sample."))
}
DOCUMENTED = {name: fn for name, fn in FUNCTIONS.items() if name not in PER_SAMPLE}


def test_namespace_is_consistent():
    assert len(LOSSES) >= 4 and len(PER_SAMPLE) >= 4
    for module in (jsl, per_sample):
        assert len(set(module.__all__)) == len(module.__all__)
        assert list(module.__all__) == sorted(module.__all__), module.__name__
        for name in module.__all__:
            assert hasattr(module, name), name
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", jsl.__version__)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_data_positional_options_keyword_only(name):
    parameters = list(inspect.signature(FUNCTIONS[name]).parameters.values())
    positional = [p for p in parameters if p.kind in (P.POSITIONAL_ONLY, P.POSITIONAL_OR_KEYWORD)]
    assert positional or not parameters, f"{name} takes no positional data argument"
    for p in positional:
        # A decorator's function argument may be left out (``@define_loss(activations=...)``).
        decorator = p.kind is P.POSITIONAL_ONLY and p.default is None
        assert p.default is P.empty or decorator, f"{name}: option {p.name!r} must be keyword-only"
    for p in parameters[len(positional) :]:
        assert p.kind in (P.KEYWORD_ONLY, P.VAR_KEYWORD), f"{name}: {p.name!r} after the data"


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_share_the_data_contract(name):
    parameters = inspect.signature(LOSSES[name]).parameters
    assert list(parameters)[:2] == ["logits", "labels"]
    # The options every loss shares keep one name and one default.
    shared = {
        "activation": "softmax",
        "class_axis": -1,
        "ignore_index": None,
        "mask": None,
        "reduction": "mean",
        "aggregate": "sample",
        "axis_name": None,
        "class_weights": None,
    }
    for option, default in shared.items():
        if option in parameters:
            assert parameters[option].default == default, (name, option)
    if name.startswith("jsl.per_sample."):
        assert not {"reduction", "aggregate", "axis_name"} & set(parameters), name


def _sections(doc: str) -> set[str]:
    return set(re.findall(r"^\s*(Args|Returns|Examples|References|Raises):\s*$", doc, re.M))


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_docstrings_have_args_returns_examples(name):
    fn = DOCUMENTED[name]
    doc = inspect.getdoc(fn)
    assert doc, f"{name} has no docstring"
    summary = doc.splitlines()[0]
    assert summary.endswith(".") and len(summary) <= 100, f"{name}: one summary line: {summary!r}"
    required = {"Args", "Returns", "Examples"} if inspect.signature(fn).parameters else {"Returns"}
    assert required | {"Examples"} <= _sections(doc), name
    assert ">>> " in doc, f"{name}: Examples must hold a runnable doctest"
    documented = set(re.findall(r"^\s{2}(\w+):", doc.split("Returns:")[0], re.M))
    for parameter in inspect.signature(fn).parameters:
        assert parameter in documented, f"{name}: argument {parameter!r} missing from Args"


@pytest.mark.parametrize("name", sorted(PER_SAMPLE))
def test_per_sample_docstrings(name):
    fn = PER_SAMPLE[name]
    doc = inspect.getdoc(fn)
    assert doc, name
    # The single-example variant documents itself through its batched loss.
    batch_name = name.removeprefix("jsl.per_sample.")
    assert f":func:`jaxseg_losses.{batch_name}`" in doc, name
    assert {"Args", "Returns", "Examples"} <= _sections(inspect.getdoc(getattr(jsl, batch_name)))
    assert {"Examples"} <= _sections(per_sample.__doc__)


@pytest.mark.parametrize("name", sorted(CLASSES))
def test_classes_are_documented(name):
    assert inspect.getdoc(CLASSES[name]), name
