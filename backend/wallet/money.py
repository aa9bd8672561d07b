"""Integer fen, formatted for people. No floats anywhere."""

from __future__ import annotations


def format_fen(amount: int, *, signed: bool = False) -> str:
    """12345 → "¥123.45"; with signed=True, "+¥123.45" / "-¥123.45"."""
    sign = "-" if amount < 0 else ("+" if signed and amount > 0 else "")
    yuan, fen = divmod(abs(int(amount)), 100)
    return f"{sign}¥{yuan:,}.{fen:02d}"
