"""Every public name and parameter of the library stays: the snapshot in ``public_api.json``.

The snapshot lists each name reachable through ``jsl``, ``jsl.metrics``, ``jsl.per_sample``,
``jsl.accumulate`` and ``jsl.geometry`` with its parameters (name, kind, default) or, for a
class, its public members. A name or parameter that disappears, or changes its kind or default,
fails here. New names are allowed; add them to the snapshot with
``python tests/api/test_public_api.py > new.json`` (then move it over the snapshot).
"""

import inspect
import json
import pathlib
import sys

import pytest

import jaxseg_losses as jsl

SNAPSHOT = pathlib.Path(__file__).with_name("public_api.json")
MODULES = {
    "jaxseg_losses": jsl,
    "jaxseg_losses.metrics": jsl.metrics,
    "jaxseg_losses.per_sample": jsl.per_sample,
    "jaxseg_losses.accumulate": jsl.accumulate,
    "jaxseg_losses.geometry": jsl.geometry,
}


def _parameters(obj):
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [
        [p.name, p.kind.name, None if p.default is p.empty else repr(p.default)]
        for p in signature.parameters.values()
    ]


def _describe(obj):
    if inspect.ismodule(obj):
        return {"kind": "module"}
    if inspect.isclass(obj):
        members = sorted(n for n in dir(obj) if not n.startswith("_"))
        return {"kind": "class", "init": _parameters(obj), "members": members}
    if callable(obj):
        return {"kind": "function", "params": _parameters(obj)}
    return {"kind": type(obj).__name__}


def current_api():
    """``{qualified name: description}`` of everything public today."""
    api = {}
    for prefix, module in MODULES.items():
        names = getattr(module, "__all__", None) or [n for n in dir(module) if n[0] != "_"]
        for name in sorted(names):
            api[f"{prefix}.{name}"] = _describe(getattr(module, name))
    return api


def _expected():
    return json.loads(SNAPSHOT.read_text())


@pytest.mark.parametrize("name", sorted(_expected()))
def test_public_name_and_parameters_kept(name):
    current_names = current_api()
    assert name in current_names, f"public name {name} is gone"
    expected, current = _expected()[name], current_names[name]
    assert current["kind"] == expected["kind"], name
    if expected["kind"] == "function":
        assert current["params"] == expected["params"], name
    elif expected["kind"] == "class":
        assert current["init"] == expected["init"], name
        missing = sorted(set(expected["members"]) - set(current["members"]))
        assert not missing, f"{name} lost {missing}"


if __name__ == "__main__":
    json.dump(current_api(), sys.stdout, indent=1, sort_keys=True)
    print()
