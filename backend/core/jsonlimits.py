"""How deeply JSON from a client may nest, checked before it is parsed.

`json.loads` recurses once per `[` or `{`: 20,000 of them (a 40 KB frame) raise RecursionError deep inside
the parser. Catching that is too late (it can surface anywhere, and the work is done); instead the raw text
is scanned once for bracket depth outside strings, in C (one regular expression), and refused before parsing.
"""

from __future__ import annotations

import re

MAX_JSON_NESTING = 32  # our frames and GraphQL bodies nest 5 levels at most

# a complete string (escapes included) or one bracket; everything else is skipped by the regex engine
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def nesting_exceeds(text: str | bytes, limit: int = MAX_JSON_NESTING) -> bool:
    """True when JSON text opens more than `limit` arrays/objects inside each other. Stops at the first
    bracket past the limit. An unterminated string makes the rest count as brackets: such text is not JSON
    anyway, and refusing it is the right answer."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", "replace")
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: not even that many brackets in all
    depth = 0
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token == "[" or token == "{":
            depth += 1
            if depth > limit:
                return True
        elif token == "]" or token == "}":
            depth -= 1
    return False
