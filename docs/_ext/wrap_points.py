"""Sphinx extension: where long names may break across lines, and nowhere else.

Why: the mapping tables (porting guide, choosing a loss) hold long calls such as
``dice(include_background=False)`` in narrow columns, and the page contents list holds long
names such as ``segmentation_models_pytorch``. Breaking anywhere cuts names in two
(``include_background=Fals`` / ``e``); not breaking overflows the column. A ``<wbr>`` gives the
browser the places to break:

- inline code in a table: after each ``_`` and ``,`` (and at its spaces), after ``(``, and
  after a ``.`` that a name follows (``HausdorffDistanceMetric(`` / ``percentile=95)``,
  ``jsl.`` / ``metrics.``), so that a call with no ``_`` still fits its column; the CSS
  (``custom.css``, ``table code.literal``) keeps each piece between them whole;
- the page contents list: after each ``_`` of an entry's text, and after a ``.`` that a name
  follows (``monai.`` / ``metrics``, not ``1.6.1``).
"""

from __future__ import annotations

import re
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.transforms.post_transforms import SphinxPostTransform

_TABLE_CODE_BREAK = re.compile(r"(?<=[_,])(?=\S)|(?<=\()(?=[^)\s])|(?<=\.)(?=[A-Za-z_])")
# Text between two tags of the contents list's HTML (never inside a tag, so never an href).
_TOC_TEXT = re.compile(r">([^<>]+)<")
_TOC_BREAK = re.compile(r"(?<=_)(?=\w)|(?<=\.)(?=[A-Za-z_])")


class TableCodeBreaks(SphinxPostTransform):
    """Add ``<wbr>`` at the break points of every inline literal inside a table (HTML only)."""

    default_priority = 900
    formats = ("html",)

    def run(self, **kwargs: Any) -> None:
        for table in self.document.findall(nodes.table):
            for literal in table.findall(nodes.literal):
                for text in list(literal.findall(nodes.Text)):
                    pieces = _TABLE_CODE_BREAK.split(text.astext())
                    parent = text.parent
                    if len(pieces) < 2 or parent is None:
                        continue
                    new: list[nodes.Node] = [nodes.Text(pieces[0])]
                    for piece in pieces[1:]:
                        new += [nodes.raw("", "<wbr>", format="html"), nodes.Text(piece)]
                    index = parent.index(text)
                    parent[index : index + 1] = new


def _toc_breaks(app: Sphinx, pagename: str, templatename: str, context: dict, doctree) -> None:
    """Add ``<wbr>`` after ``_`` and before a name after ``.`` in the page's contents list."""
    toc = context.get("toc")
    if toc:
        context["toc"] = _TOC_TEXT.sub(
            lambda match: ">" + _TOC_BREAK.sub("<wbr>", match.group(1)) + "<", toc
        )


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_post_transform(TableCodeBreaks)
    app.connect("html-page-context", _toc_breaks)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
