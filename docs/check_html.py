"""Check the built HTML documentation reads the same offline: maths converted, nothing from a CDN.

Usage: ``python docs/check_html.py [docs/_build/html]``. Exits 1 and lists every finding
(``page:line: what: excerpt``) when a page

- shows raw TeX in its text, outside code: ``\\(``, ``\\[``, ``$$``, a ``$...$`` pair holding
  TeX, or a TeX command such as ``\\frac`` (maths that no renderer converted);
- has a formula that did not become MathML: a ``math`` span or div without a ``<math>``
  element, a ``math-error`` element, or a MathML token that still holds a backslash;
- loads something from the network: a script, stylesheet, font, image or frame whose ``src``
  or ``href`` is ``http(s)://`` or ``//``, or a ``url(http...)`` / ``@import`` of one in a
  ``<style>`` or in a CSS file of the build.

Links a reader clicks (``<a href>``, ``<link rel="canonical">`` and such) are not loads and
pass. Standard library only, so CI runs it right after ``sphinx-build``.
"""

from __future__ import annotations

import re
import sys
from html.parser import HTMLParser
from pathlib import Path

REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)
# <link rel=...> values that make the browser fetch the target while loading the page.
LOADING_RELS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut", "apple-touch-icon"}
LOADING_TAGS = {"script", "img", "iframe", "source", "audio", "video", "embed", "track", "input"}
CSS_REMOTE = re.compile(r"""(url\(\s*['"]?|@import\s+['"])\s*((https?:)?//[^)'"\s]*)""", re.I)
# Text in which nothing is TeX to flag: code, scripts, styles, and MathML itself.
VERBATIM = {"code", "pre", "kbd", "samp", "script", "style", "textarea", "math"}
RAW_TEX = re.compile(
    r"\\\(|\\\)|\\\[|\\\]|\$\$|\$[^$\n]*[\\^_][^$\n]*\$"
    r"|\\(?:frac|tfrac|dfrac|sum|prod|int|sqrt|mathrm|mathbb|mathcal|operatorname|text|left|right"
    r"|begin|end|alpha|beta|gamma|lambda|sigma|ell|cdot|times|le|ge|in|lvert|rvert)(?![a-zA-Z])"
)
MATHML_TOKENS = {"mi", "mn", "mo", "mtext", "ms"}
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}
VOID |= {"track", "wbr", "param", "mspace", "none", "mprescripts", "malignmark", "maligngroup"}


class PageChecker(HTMLParser):
    """Collect the findings of one HTML page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.findings: list[tuple[int, str, str]] = []
        # Open elements: (tag, classes, a <math> seen inside?)
        self.stack: list[tuple[str, set[str], list[bool]]] = []
        self.style_text: list[str] = []

    def _inside(self, tags: set[str]) -> bool:
        return any(tag in tags for tag, _, _ in self.stack)

    def _report(self, what: str, excerpt: str) -> None:
        self.findings.append((self.getpos()[0], what, excerpt.strip()[:120]))

    def _check_loads(self, tag: str, attrs: dict[str, str]) -> None:
        if tag == "link":
            rels = set((attrs.get("rel") or "").lower().split())
            if rels & LOADING_RELS and REMOTE.match(attrs.get("href") or ""):
                self._report(f"<link rel={attrs.get('rel')}> from the network", attrs["href"])
        elif tag in LOADING_TAGS:
            for name in ("src", "srcset", "data"):
                if REMOTE.match(attrs.get(name) or ""):
                    self._report(f"<{tag} {name}> from the network", attrs[name] or "")
        elif tag == "object" and REMOTE.match(attrs.get("data") or ""):
            self._report("<object data> from the network", attrs["data"] or "")
        if "style" in attrs:
            for match in CSS_REMOTE.finditer(attrs["style"] or ""):
                self._report("style attribute loads from the network", match.group(2))

    def handle_starttag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        attrs = {name: value or "" for name, value in attrs_list}
        self._check_loads(tag, attrs)
        classes = set(attrs.get("class", "").split())
        if "math-error" in classes:
            self._report("formula not converted (math-error)", "")
        if tag == "math":
            for _tag, _classes, seen in self.stack:
                seen[0] = True
        if tag not in VOID:
            self.stack.append((tag, classes, [False]))

    def handle_startendtag(self, tag: str, attrs_list: list[tuple[str, str | None]]) -> None:
        self._check_loads(tag, {name: value or "" for name, value in attrs_list})

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID or not any(open_tag == tag for open_tag, _, _ in self.stack):
            return
        while self.stack:
            open_tag, classes, seen = self.stack.pop()
            if open_tag in ("span", "div") and "math" in classes and not seen[0]:
                self._report(f"<{open_tag} class=math> without MathML", "")
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if not self.stack:
            return
        tag = self.stack[-1][0]
        if tag == "style":
            self.style_text.append(data)
            for match in CSS_REMOTE.finditer(data):
                self._report("<style> loads from the network", match.group(2))
        if tag in MATHML_TOKENS and self._inside({"math"}) and "\\" in data:
            self._report("MathML token holds TeX", data)
        if not self._inside(VERBATIM):
            for match in RAW_TEX.finditer(data):
                start = max(match.start() - 30, 0)
                self._report(f"raw TeX {match.group(0)!r} in text", data[start : match.end() + 30])


def check_page(path: Path) -> list[tuple[int, str, str]]:
    """The findings of one page: ``(line, what, excerpt)``."""
    checker = PageChecker()
    checker.feed(path.read_text(encoding="utf-8"))
    checker.close()
    return checker.findings


def check_css(path: Path) -> list[tuple[int, str, str]]:
    """Network loads (``url(http...)``, ``@import``) in one CSS file of the build."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return [
        (text.count("\n", 0, match.start()) + 1, "CSS loads from the network", match.group(2))
        for match in CSS_REMOTE.finditer(text)
    ]


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else "docs/_build/html")
    pages = sorted(root.rglob("*.html"))
    if not pages:
        print(f"check_html: no HTML pages under {root}", file=sys.stderr)
        return 1
    found = 0
    for path in [*pages, *sorted(root.rglob("*.css"))]:
        findings = check_page(path) if path.suffix == ".html" else check_css(path)
        for line, what, excerpt in findings:
            print(f"{path.relative_to(root)}:{line}: {what}: {excerpt}")
        found += len(findings)
    formulas = sum(page.read_text(encoding="utf-8").count("<math ") for page in pages)
    if found:
        print(f"check_html: {found} finding(s) in {root}", file=sys.stderr)
        return 1
    print(f"check_html: {len(pages)} pages, {formulas} formulas as MathML, no raw TeX, no CDN")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
