"""Sphinx configuration of the jaxseg_losses documentation.

Build: ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (the ``docs`` extra), then
``python docs/check_html.py`` (no raw TeX, nothing from a CDN); ``python docs/build.py`` runs both
and, where Chromium is installed, takes screenshots into ``_static/screenshots``.
"""

import importlib
import inspect
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
# Local extensions (docs/_ext): MathML at build time; where long names in tables and the
# contents list may break.
sys.path.insert(0, os.path.abspath("_ext"))

import jaxseg_losses

project = "jaxseg_losses"
author = "jaxseg_losses developers"
copyright = "2026, jaxseg_losses developers"
release = jaxseg_losses.__version__
version = release

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "mathml",
    "wrap_points",
]

# Maths is MathML written at build time (docs/_ext/mathml.py): the pages load no script and
# nothing from a network, and a formula that does not convert fails the build.
html_math_renderer = "mathml"

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: $...$ maths in the markdown pages, ::: fences, and anchors for "##" headings.
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# Docstrings are Google style (Args:, Returns:, Examples:, References:).
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" as fields of the class: the dataclass fields are documented by autodoc already.
napoleon_use_ivar = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
# Not autodoc_preserve_defaults: it reads defaults from the source of the wrapper, which for the
# generated losses (`define_loss`) has none of the signature's parameters.
# Annotations are strings (``from __future__ import annotations``); keep the alias names.
autodoc_type_aliases = {
    "ArrayLike": "jax.typing.ArrayLike",
    "ArrayLike | None": "jax.typing.ArrayLike | None",
}
python_use_unqualified_type_names = True
# The page contents list shows "update()", not "ConfusionMatrixAccumulator.update()" each time.
toc_object_entries_show_parents = "hide"
# The pytree protocol of the accumulators is JAX's business, not the reader's.
autodoc_default_options = {"exclude-members": "tree_flatten, tree_unflatten"}

html_theme = "sphinx_book_theme"
html_title = f"jaxseg_losses {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}


def _documented_public_names():
    """Every public name the API reference must show: every loss of the table of built-in
    losses, ``jsl.*``, ``jsl.metrics.*``, ...."""
    from jaxseg_losses.registry import BUILTIN_LOSSES

    names = [f"jaxseg_losses.{entry.name}" for entry in BUILTIN_LOSSES]
    for name in jaxseg_losses.__all__:
        obj = getattr(jaxseg_losses, name)
        if inspect.ismodule(obj):
            for sub in getattr(obj, "__all__", ()):
                names.append(f"jaxseg_losses.{name}.{sub}")
        else:
            names.append(f"jaxseg_losses.{name}")
    # The optional integrations (the docs extra installs flax and clu).
    for module_name in ("jaxseg_losses.nnx", "jaxseg_losses.clu"):
        module = importlib.import_module(module_name)
        names += [f"{module_name}.{sub}" for sub in module.__all__]
    return list(dict.fromkeys(names))


def _check_api_reference(app, env):
    """Warns (an error under -W) for a public name missing from the API reference."""
    documented = set(env.domaindata["py"]["objects"])
    for full in _documented_public_names():
        module, _, name = full.rpartition(".")
        obj = getattr(sys.modules.get(module) or jaxseg_losses, name, None)
        # A name documented under the module that defines it counts too.
        origin = getattr(obj, "__module__", None)
        candidates = {full}
        if origin:
            candidates.add(f"{origin}.{name}")
        if not candidates & documented:
            from sphinx.util import logging

            logging.getLogger(__name__).warning(
                "public name %s is missing from the API reference (docs/api/*.md)", full
            )


def setup(app):
    app.connect("env-check-consistency", _check_api_reference)
