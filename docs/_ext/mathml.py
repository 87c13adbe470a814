"""Sphinx extension: write every TeX formula into the HTML as MathML, at build time.

Why: a page that loads MathJax from a CDN shows raw TeX (``\\(C\\)``) without a network.
Chromium, Firefox and Safari draw MathML themselves, so the pages need no script and nothing
from outside. The conversion is latex2mathml's (pure Python, from the ``docs`` extra), with fixes
for the parts of its output that MathML Core, the subset the browsers draw, leaves out (named
space widths, ``mathvariant`` other than ``normal``, ``aligned``) and for TeX's spacing of
``|``, brackets and operator names (``\\log p``, ``\\max_c``). The font is Latin Modern Math,
shipped in ``_static/fonts``. A formula that does not convert completely (an unknown command or
environment, unbalanced braces, a line break outside an environment, a style no browser draws, a
symbol the font lacks) is a build warning naming the page and the formula, so an error under
``sphinx-build -W``.

Use: ``extensions = ["mathml"]`` with ``docs/_ext`` on ``sys.path`` and
``html_math_renderer = "mathml"``.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docutils import nodes
from latex2mathml.commands import MATRICES
from latex2mathml.converter import convert
from sphinx.locale import _
from sphinx.util import logging
from sphinx.util.math import get_node_equation_number

if TYPE_CHECKING:
    from sphinx.application import Sphinx
    from sphinx.writers.html5 import HTML5Translator

logger = logging.getLogger(__name__)

# amsmath environments latex2mathml lacks, as the one it has with the same layout.
_ENVIRONMENT_ALIASES = {
    "aligned": "align*",
    "alignat": "align*",
    "alignat*": "align*",
    "alignedat": "align*",
    "gather": "gathered",
    "gather*": "gathered",
}
_KNOWN_ENVIRONMENTS = {name.lstrip("\\") for name in MATRICES} | {"gathered"}

# MathML Core has no named widths ("thinmathspace"); TeX's values, in em.
_NAMED_SPACES = {"veryverythin": 1, "verythin": 2, "thin": 3, "medium": 4, "thick": 5}
_NAMED_SPACES |= {"verythick": 6, "veryverythick": 7}
_NAMED_SPACE = re.compile(r'"(negative)?(' + "|".join(_NAMED_SPACES) + r')mathspace"')

# Browsers draw mathvariant="normal" only: the others become Unicode's mathematical letters.
# First code point of each alphabet (Latin capital, Latin small, Greek capital, Greek small, digit).
_ALPHABETS = {
    "bold": (0x1D400, 0x1D41A, 0x1D6A8, 0x1D6C2, 0x1D7CE),
    "italic": (0x1D434, 0x1D44E, 0x1D6E2, 0x1D6FC, None),
    "bold-italic": (0x1D468, 0x1D482, 0x1D71C, 0x1D736, None),
}
_HOLES = {0x1D455: "\u210e"}  # italic small h is Planck's constant, outside the block
_VARIANT_TOKEN = re.compile(r'<(mi|mn|mo|mtext) mathvariant="([a-z-]+)">([^<]*)</\1>')
_TOKEN = re.compile(r"<(mi|mn|mo|mtext|ms)\b[^>]*>([^<]*)</\1>")
# TeX's | and \| (also \lvert, \rVert, ...) take no space; MathML would space them as infix.
_BAR = re.compile(r"<mo((?: [a-z]+=\"[a-z]+\")*)>(&#x0007C;|&#x02016;)</mo>")
# Characters latex2mathml picks where TeX (and the shipped font) has another.
_SUBSTITUTE = {"<mi>&#x029F5;</mi>": "<mo>&#x02216;</mo>"}  # \setminus: set minus, an operator


def _font_code_points() -> frozenset[int]:
    """The code points of the math font the pages use (``latinmodern-math.ranges``)."""
    points: set[int] = set()
    lines = (Path(__file__).with_name("latinmodern-math.ranges")).read_text().splitlines()
    for line in lines:
        if line and not line.startswith("#"):
            first, last = line.split("-")
            points.update(range(int(first, 16), int(last, 16) + 1))
    return frozenset(points)


_FONT_CODE_POINTS = _font_code_points()
_SYMBOL = re.compile(r"<(mi|mn|mo)\b[^>]*>([^<]*)</\1>")
# TeX operator names latex2mathml does not know, as \operatorname{...}.
_MISSING_OPERATORS = re.compile(r"\\(arg)(?![a-zA-Z])")
# Operator names whose scripts TeX sets as limits (under and over) in a displayed formula.
_LIMITS = {"lim", "max", "min", "sup", "inf", "det", "gcd", "Pr", "liminf", "limsup"}
_LIMITS |= {"injlim", "projlim", "argmax", "argmin"}
_AS_LIMITS = {"msub": "munder", "msup": "mover", "msubsup": "munderover"}
_SCRIPTED = {*_AS_LIMITS, *_AS_LIMITS.values()}
_OPENING = set("([{|\u2016\u230a\u2308\u27e8")
_BRACKETS = set("()[]{}\u230a\u230b\u2308\u2309\u27e8\u27e9")
_OPERATOR_NAME = re.compile(r"[A-Za-z]{2,}|[A-Za-z]+[\u2006\u2009][A-Za-z]+")
# Escapes TeX allows inside \text{...} that latex2mathml leaves as written.
_TEXT_ESCAPE = re.compile(r"\\([_%&#$])")


def _styled_char(char: str, variant: str) -> str | None:
    """The mathematical-alphanumeric form of ``char`` in ``variant``; None if Unicode has none."""
    latin_cap, latin_small, greek_cap, greek_small, digit = _ALPHABETS[variant]
    code = ord(char)
    if "A" <= char <= "Z":
        point = latin_cap + code - ord("A")
    elif "a" <= char <= "z":
        point = latin_small + code - ord("a")
    elif 0x391 <= code <= 0x3A9:
        point = greek_cap + code - 0x391
    elif 0x3B1 <= code <= 0x3C9:
        point = greek_small + code - 0x3B1
    elif "0" <= char <= "9" and digit is not None:
        point = digit + code - ord("0")
    else:
        return None
    return _HOLES.get(point, chr(point))


def _restyle(match: re.Match[str]) -> str:
    """One token with a ``mathvariant`` as plain Unicode letters (kept as is if it can't be)."""
    tag, variant, text = match.groups()
    if variant == "normal" or variant not in _ALPHABETS:
        return match.group(0)
    chars = [_styled_char(char, variant) for char in html.unescape(text)]
    if any(char is None for char in chars):
        return match.group(0)
    return f"<{tag}>{''.join(c for c in chars if c)}</{tag}>"


def _is_operator_name(element: ET.Element) -> bool:
    return element.tag in ("mi", "mo") and bool(_OPERATOR_NAME.fullmatch(element.text or ""))


def _opens(element: ET.Element | None) -> bool:
    """Whether ``element`` starts with an opening bracket (then no space before it, as in TeX)."""
    while element is not None and element.tag == "mrow" and len(element):
        element = element[0]
    return element is not None and element.tag == "mo" and (element.text or " ")[0] in _OPENING


def _space_brackets(root: ET.Element) -> None:
    """No space inside or around a bracket, as in TeX.

    A bracket in the middle of a row is an infix operator to MathML, spaced as one when its
    dictionary lookup fails (``\\big(``: ``max ( 1``).
    """
    for element in root.iter("mo"):
        if (element.text or "").strip() in _BRACKETS and "lspace" not in element.attrib:
            element.set("lspace", "0")
            element.set("rspace", "0")


def _space_operator_names(root: ET.Element) -> None:
    """Give ``log``, ``max``, ``round`` (``\\operatorname``) TeX's spacing and limits.

    MathML puts no space between ``<mi>log</mi>`` and ``<mi>p</mi>``, and a wide one around
    ``<mo>round</mo>``; TeX puts a thin space on each side, none before an opening bracket, and
    sets the scripts of ``max``, ``lim``, ... under and over the name in a displayed formula.
    """
    for parent in root.iter():
        children = list(parent)
        for index, child in enumerate(children):
            if index == 0 and parent.tag in _SCRIPTED:
                continue  # the base of a script: spaced from the grandparent, as a whole
            core = child[0] if child.tag in _SCRIPTED and len(child) else child
            if not _is_operator_name(core):
                continue
            following = children[index + 1] if index + 1 < len(children) else None
            core.tag = "mo"
            core.set("lspace", "0.167em")
            core.set("rspace", "0" if _opens(following) else "0.167em")
            if re.sub(r"[\u2006\u2009]", "", core.text or "") in _LIMITS:
                core.set("movablelimits", "true")
                if core is not child:
                    child.tag = _AS_LIMITS.get(child.tag, child.tag)


def _top_level_line_break(tex: str) -> bool:
    """Whether ``tex`` has a ``\\\\`` outside every ``\\begin``/``\\end`` environment."""
    depth = 0
    for token in re.finditer(r"\\begin\{|\\end\{|\\\\", tex):
        if token.group(0) == "\\begin{":
            depth += 1
        elif token.group(0) == "\\end{":
            depth -= 1
        elif depth == 0:
            return True
    return False


_GROUPING = re.compile(
    r"\\begin\{[^}]*\}|\\end\{[^}]*\}|\\(?:left|right|quad|qquad)(?![a-zA-Z])|\\.|[{}]"
)


def _side_by_side(tex: str) -> list[str]:
    """The formulas a displayed ``a, \\quad b`` lists: split at each ``\\quad`` or ``\\qquad``
    that follows a comma or semicolon outside braces.

    Laid out as separate formulas, they wrap onto the next line in a narrow column instead of
    running past its edge.
    """
    pieces, depth, start = [], 0, 0
    for token in _GROUPING.finditer(tex):
        text = token.group(0)
        # \{ \} too: a set {i : ...} is one formula, whatever spaces it holds.
        if text.startswith("\\begin") or text in ("{", "\\{", "\\left"):
            depth += 1
        elif text.startswith("\\end") or text in ("}", "\\}", "\\right"):
            depth -= 1
        elif text in ("\\quad", "\\qquad") and depth == 0:
            before = tex[start : token.start()]
            if before.rstrip().endswith((",", ";")):
                pieces.append(before)
                start = token.end()
    pieces.append(tex[start:])
    return [piece.strip() for piece in pieces if piece.strip()]


def _problems_before(tex: str) -> list[str]:
    """What latex2mathml would drop without a word: unbalanced braces, unknown environments."""
    problems = []
    unescaped = re.sub(r"\\[{}\\]", "", tex)
    if unescaped.count("{") != unescaped.count("}"):
        problems.append("unbalanced braces")
    for name in re.findall(r"\\begin\{([^}]*)\}", tex):
        if name not in _KNOWN_ENVIRONMENTS:
            problems.append(f"unknown environment {name!r}")
    return problems


def _problems_after(mathml: str) -> list[str]:
    """What the browsers would not draw: TeX left in a token, a style, a line break."""
    problems = []
    for _tag, text in _TOKEN.findall(mathml):
        if "\\" in html.unescape(text):
            problems.append(f"unconverted {html.unescape(text)!r}")
    for variant in set(re.findall(r'mathvariant="([a-z-]+)"', mathml)) - {"normal"}:
        problems.append(f"style {variant!r} with no Unicode letters")
    for _tag, text in _SYMBOL.findall(mathml):
        for char in html.unescape(text):
            if ord(char) not in _FONT_CODE_POINTS:
                problems.append(f"U+{ord(char):04X} {char!r} is not in the math font")
    if 'linebreak="newline"' in mathml:
        problems.append("a line break (\\\\) outside an environment")
    return problems


def tex_to_mathml(tex: str, *, display: bool) -> tuple[str, list[str]]:
    """Convert one formula; return the MathML and what did not convert (empty when all did).

    Args:
        tex: the formula's TeX, without delimiters.
        display: True for a displayed formula (``$$``, ``.. math::``), False for inline.

    Returns:
        ``(mathml, problems)``: the ``<math>`` element, and a list of messages, empty when the
        whole formula converted.
    """
    for name, alias in _ENVIRONMENT_ALIASES.items():
        tex = tex.replace(f"\\begin{{{name}}}", f"\\begin{{{alias}}}")
        tex = tex.replace(f"\\end{{{name}}}", f"\\end{{{alias}}}")
    # latex2mathml has no "gathered": a centred one-column array is the same layout.
    tex = tex.replace("\\begin{gathered}", "\\begin{array}{c}")
    tex = tex.replace("\\end{gathered}", "\\end{array}")
    tex = _MISSING_OPERATORS.sub(r"\\operatorname{\1}", tex)
    if display and _top_level_line_break(tex):
        # As Sphinx's MathJax renderer does: lines of a displayed formula align at "&".
        tex = f"\\begin{{split}}{tex}\\end{{split}}"
    problems = _problems_before(tex)
    try:
        mathml = convert(tex, display="block" if display else "inline")
    except Exception as error:  # latex2mathml raises its own exception types, none shared
        return "", [*problems, f"latex2mathml: {type(error).__name__} {error}".strip()]
    mathml = _NAMED_SPACE.sub(
        lambda m: f'"{"-" if m.group(1) else ""}{_NAMED_SPACES[m.group(2)] / 18:.3f}em"', mathml
    )
    mathml = _VARIANT_TOKEN.sub(_restyle, mathml)
    for old, new in _SUBSTITUTE.items():
        mathml = mathml.replace(old, new)
    mathml = _BAR.sub(r'<mo\1 lspace="0" rspace="0">\2</mo>', mathml)
    mathml = _TOKEN.sub(lambda m: _TEXT_ESCAPE.sub(r"\1", m.group(0)), mathml)
    mathml = mathml.replace(' xmlns="http://www.w3.org/1998/Math/MathML"', "", 1)
    root = ET.fromstring(mathml)
    _space_brackets(root)
    _space_operator_names(root)
    mathml = ET.tostring(root, encoding="unicode")
    return mathml, problems + _problems_after(mathml)


def _render(self: HTML5Translator, node: nodes.Element, tex: str, *, display: bool) -> str:
    """The HTML of one formula; each problem of its conversion is a warning at ``node``."""
    mathml, problems = tex_to_mathml(tex, display=display)
    for problem in problems:
        logger.warning(
            "formula not converted to MathML (%s): %s", problem, tex, location=node, type="mathml"
        )
    if not mathml:
        return f'<code class="math-error">{self.encode(tex)}</code>'
    # The TeX source stays in alttext: a fallback for tools that read no MathML.
    return mathml.replace("<math ", f'<math alttext="{html.escape(tex)}" ', 1)


def visit_math(self: HTML5Translator, node: nodes.math) -> None:
    """Write an inline formula as ``<span class="math"><math>…</math></span>``."""
    self.body.append(self.starttag(node, "span", "", CLASS="math notranslate"))
    self.body.append(_render(self, node, node.astext(), display=False) + "</span>")
    raise nodes.SkipNode


def visit_math_block(self: HTML5Translator, node: nodes.math_block) -> None:
    """Write a displayed formula: one ``<math display="block">`` per blank-line-separated part,
    or a row of them that wraps where the part lists formulas (``a, \\quad b``)."""
    self.body.append(self.starttag(node, "div", CLASS="math notranslate"))
    if node["number"]:
        number = get_node_equation_number(self, node)
        self.body.append(f'<span class="eqno">({number})')
        self.add_permalink_ref(node, _("Link to this equation"))
        self.body.append("</span>")
    for part in node.astext().split("\n\n"):
        if not part.strip():
            continue
        pieces = [part] if _top_level_line_break(part) else _side_by_side(part)
        if len(pieces) == 1:
            self.body.append(_render(self, node, part, display=True))
        else:
            rendered = (_render(self, node, piece, display=True) for piece in pieces)
            self.body.append(f'<div class="math-row">{" ".join(rendered)}</div>')
    self.body.append("</div>\n")
    raise nodes.SkipNode


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_html_math_renderer("mathml", (visit_math, None), (visit_math_block, None))
    return {"parallel_read_safe": True, "parallel_write_safe": True}
