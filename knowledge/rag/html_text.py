"""HTML → readable text with Markdown headings (stdlib parser, no lxml/bs4).

Saved course pages are full of chrome: scripts, styles, SVG icons, navigation
and anchor links. We keep headings (as `#` lines, so the chunker sees the
page structure), paragraphs, list items, table rows and code, and drop the rest.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_DROP = {
    "script",
    "style",
    "svg",
    "noscript",
    "template",
    "head",
    "iframe",
    "canvas",
    "button",
    "form",
    "select",
}
_DROP_IF_CHROME = {"nav", "footer", "header", "aside"}  # site chrome, not content
_BLOCK = {
    "p",
    "div",
    "section",
    "article",
    "main",
    "br",
    "hr",
    "blockquote",
    "pre",
    "ul",
    "ol",
    "dl",
    "dt",
    "dd",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "figure",
    "figcaption",
    "details",
    "summary",
    "li",
}
_HEADINGS = {f"h{i}": i for i in range(1, 7)}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
_TAG_RE = re.compile(
    r"<(!doctype html|html|head|body|div|p|span|a|article|section|h[1-6]|ul|ol|li|table|tr|td|meta|script|br)\b",
    re.I,
)


def looks_like_html(text: str) -> bool:
    """True for HTML documents and fragments, whatever the file is called.

    A Markdown file with a few inline tags is not HTML: we need a page that
    starts with markup or is dense with it.
    """
    head = text[:20000]
    stripped = head.lstrip().lower()
    if stripped.startswith(("<!doctype html", "<html", "<?xml")) and "<html" in stripped[:2000]:
        return True
    tags = len(_TAG_RE.findall(head))
    if stripped.startswith("<") and tags >= 3:
        return True
    closing = len(re.findall(r"</(div|p|li|span|a|h[1-6]|td|tr)>", head, re.I))
    return tags >= 20 and closing >= 10 and tags * 40 > len(head) / 4


_STRAY_TAG_RE = re.compile(
    r"<!--.*?-->|<(script|style|iframe|svg)\b[^>]*>.*?</\1\s*>"
    r"|</?(?:a|b|i|u|em|strong|span|div|p|br|hr|img|iframe|sup|sub|small|font|center|details|summary|kbd|code)\b[^>]*>",
    re.I | re.S,
)


def strip_stray_tags(text: str) -> str:
    """Drop inline HTML (embeds, <br>, <img ...>) that Markdown and text notes carry along."""
    return _STRAY_TAG_RE.sub("", text)


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._drop_depth = 0
        self._drop_stack: list[str] = []
        self._heading: list[str] | None = None
        self._heading_level = 0
        self._pre = 0
        self._cell = False

    # ----- structure ---------------------------------------------------------
    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if self._drop_depth:
            if tag not in _VOID:
                self._drop_stack.append(tag)
                self._drop_depth += 1
            return
        hidden = (
            attr.get("aria-hidden") == "true"
            or "hidden" in attr
            or "display:none" in (attr.get("style") or "")
        )
        if tag in _DROP or tag in _DROP_IF_CHROME or (hidden and tag not in _VOID):
            self._drop_stack.append(tag)
            self._drop_depth = 1
            return
        if tag in _HEADINGS:
            self._newline(2)
            self._heading, self._heading_level = [], _HEADINGS[tag]
        elif tag == "li":
            self._newline(1)
            self.out.append("- ")
        elif tag in ("td", "th"):
            if self._cell:
                self.out.append(" | ")
            self._cell = True
        elif tag == "pre":
            self._newline(2)
            self._pre += 1
        elif tag == "img" and attr.get("alt"):
            self._text(f" {attr['alt']} ")
        elif tag in _BLOCK:
            self._newline(2 if tag in ("p", "table", "blockquote", "section", "article") else 1)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._drop_depth:
            # Close up to the matching open tag: tolerates unclosed children.
            if tag in self._drop_stack:
                while self._drop_stack:
                    self._drop_depth -= 1
                    if self._drop_stack.pop() == tag:
                        break
            return
        if tag in _HEADINGS and self._heading is not None:
            title = re.sub(r"\s+", " ", "".join(self._heading)).strip()
            self._heading = None
            if title:
                self._newline(2)
                self.out.append(f"{'#' * self._heading_level} {title}")
                self._newline(2)
        elif tag == "tr":
            self._cell = False
            self._newline(1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self._newline(2)
        elif tag in _BLOCK:
            self._newline(2 if tag in ("p", "table", "blockquote") else 1)

    def handle_data(self, data: str) -> None:
        if self._drop_depth:
            return
        self._text(data)

    # ----- output --------------------------------------------------------------
    def _text(self, data: str) -> None:
        if self._heading is not None:
            self._heading.append(data)
        elif self._pre:
            self.out.append(data)
        else:
            collapsed = re.sub(r"\s+", " ", data)
            if collapsed.strip() or (self.out and not self.out[-1].endswith((" ", "\n"))):
                self.out.append(collapsed)

    def _newline(self, count: int) -> None:
        """End the current line/paragraph: at least `count` newlines, never more."""
        if not self.out:
            return
        have = 0
        for piece in reversed(self.out):
            body = piece.rstrip(" ")
            have += len(body) - len(body.rstrip("\n"))
            if body.rstrip("\n"):
                break
        if have < count:
            self.out.append("\n" * (count - have))


def html_to_text(markup: str) -> str:
    parser = _TextExtractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.out)  # entities are already decoded (convert_charrefs)
    lines = [re.sub(r"[ \t]+", " ", line).strip() for line in text.splitlines()]
    # Lines that are only list bullets or table pipes carry nothing.
    lines = [line for line in lines if line not in ("-", "|")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"
