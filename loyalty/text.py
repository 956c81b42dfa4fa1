"""Vietnamese text folding: commands and spreadsheet headers match with or without diacritics."""

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
