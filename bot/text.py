"""Vietnamese text folding so commands match with or without diacritics, in any case."""

from __future__ import annotations

from loyalty.text import fold

__all__ = ["fold", "tail_words"]


def tail_words(text: str, skip: int) -> str:
    """The original text without its first `skip` words (the command), diacritics kept."""
    words = text.strip().lstrip("#").split()
    return " ".join(words[skip:])
