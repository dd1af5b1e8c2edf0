"""Values from a club's feed (TechIds, example rows, error excerpts, HTTP reason phrases and bodies) made inert
before a person reads them: on a terminal (local mode's console, `cappi`) and in a Markdown report.

A feed is written by someone else. Printed raw, its text can drive the terminal (ESC and CSI sequences, U+009B,
DEL), reorder what the reader sees (bidi overrides such as U+202E), forge a second line (a newline), or break a
Markdown table (`|`, a backtick). `for_terminal` escapes every such character visibly, as Python writes it
(`\\x9b`, `\\u202e`, `\\n`); `markdown_cell` and `markdown_code` do that and then escape Markdown's own syntax.
"""

from __future__ import annotations

import unicodedata

# Unicode categories that never print as a glyph: controls (C0, DEL, C1), format characters (bidi embeddings,
# overrides and isolates, zero-width characters), lone surrogates (which cannot even be encoded for output), and the
# line and paragraph separators.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def for_terminal(value: object) -> str:
    """`value` as text that prints as itself on one terminal line: every control, format (bidi) and separator
    character written as its escape (`\\x1b`, `\\u202e`); anything else, including non-ASCII letters, unchanged."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable():
        return text
    return "".join(_escape(c) if unicodedata.category(c) in _UNSAFE_CATEGORIES else c for c in text)


_MARKDOWN = str.maketrans(
    {
        "\\": "\\\\",
        "|": "\\|",
        "`": "\\`",
        "[": "\\[",
        "]": "\\]",
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
    }
)


def markdown_cell(value: object) -> str:
    """`value` as plain text inside a Markdown table cell (or a line of prose): inert for a terminal, then `|`,
    backticks and link brackets backslash-escaped, `<`, `>` and `&` as entities (no HTML), and leading or
    trailing spaces kept as `&#32;` (a cell's spaces are otherwise trimmed)."""
    text = for_terminal(value).translate(_MARKDOWN)
    stripped = text.strip(" ")
    if stripped == text:
        return text
    start = len(text) - len(text.lstrip(" "))
    end = len(text) - len(text.rstrip(" "))
    return "&#32;" * start + stripped + "&#32;" * end if stripped else "&#32;" * len(text)


def markdown_code(value: object) -> str:
    """`value` as a Markdown code span that is safe in a table cell: inert for a terminal, a backtick fence longer
    than any run of backticks inside, padded when the text starts or ends with a backtick or a space, and `|`
    escaped (GitHub's tables honour `\\|` inside a code span). Inside a code span `<`, `>` are never HTML. Text that
    holds a backslash before a `|` is given as `markdown_cell` gives it: renderers disagree whether `\\\\|` in a code
    span ends the cell."""
    text = for_terminal(value)
    if "\\|" in text:
        return markdown_cell(value)
    text = text.replace("|", "\\|")
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if text[:1] in ("`", " ") or text[-1:] in ("`", " ") else ""
    return f"{fence}{pad}{text}{pad}{fence}"
