"""What user-typed text may contain before it is stored.

PostgreSQL refuses NUL in text columns, and a lone surrogate (JSON allows "\\ud800") cannot be encoded as
UTF-8 at all: both crashed deep in the database driver or the encryption layer. Services check their text
inputs here and answer with their own stable codes.
"""

from __future__ import annotations

import unicodedata

# Bidirectional overrides and isolates: in a name or a memo they reorder what the reader sees ("spoofing").
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def storage_problem(value: str) -> str | None:
    """What keeps `value` from being stored, said so a person can fix it, or None when it can be."""
    if "\x00" in value:
        return "contains a NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (U+D800-U+DFFF without its pair), which is not valid Unicode"
    return None


def is_storable(value: str) -> bool:
    """No NUL and valid UTF-8 (no lone surrogates). Message bodies need only this."""
    return storage_problem(value) is None


def is_clean_line(value: str) -> bool:
    """A single line a person typed as a label (title, name, memo): storable, no control characters
    (line breaks and tabs included) and no bidirectional overrides."""
    return is_storable(value) and not any(
        ch in BIDI_CONTROLS or unicodedata.category(ch) == "Cc" for ch in value)


def is_blank(value: str) -> bool:
    """Nothing visible: only whitespace and format characters (zero-width spaces, joiners, BOM)."""
    return all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in value)
