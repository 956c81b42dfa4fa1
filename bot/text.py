"""Vietnamese text folding so commands match with or without diacritics, in any case."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"\s+")


def fold(text: str) -> str:
    """ "#Điểm  CỦA tôi" -> "diem cua toi": no diacritics, lower case, single spaces, no leading #."""
    text = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    text = _SPACES.sub(" ", text).strip().lower()
    return text.lstrip("#").strip()


def tail_words(text: str, skip: int) -> str:
    """The original text without its first `skip` words (the command), diacritics kept."""
    words = text.strip().lstrip("#").split()
    return " ".join(words[skip:])
