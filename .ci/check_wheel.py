"""Checks an installed wheel: imported from site-packages, py.typed shipped, a doctest passes.

Run by .ci/run with the interpreter of a fresh virtual environment that has only the wheel (and
its dependencies) installed, from a directory outside the source tree.
"""

import doctest
import importlib.resources
import pathlib
import sys

import jaxseg_losses as jsl
import jaxseg_losses.losses.region

location = pathlib.Path(jsl.__file__).resolve()
if "site-packages" not in location.parts:
    sys.exit(f"CI: jaxseg_losses was imported from {location}, not from the installed wheel")
if not importlib.resources.files("jaxseg_losses").joinpath("py.typed").is_file():
    sys.exit("CI: the wheel does not ship jaxseg_losses/py.typed")

# One docstring example of the installed package (dice_loss's), run as pytest would run it.
finder = doctest.DocTestFinder()
tests = [t for t in finder.find(jaxseg_losses.losses.region) if t.name.endswith(".dice_loss")]
runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
for test in tests:
    runner.run(test)
result = runner.summarize(verbose=False)
if not tests or result.attempted == 0 or result.failed:
    sys.exit(f"CI: doctest of the installed dice_loss: {result}")
print(
    f"CI: wheel {jsl.__version__} at {location.parent}: py.typed, {result.attempted} doctest lines"
)
