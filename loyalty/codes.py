"""Human-typable random codes: no I, O, 0 or 1, so nobody misreads them at the counter."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 32 symbols, 5 bits each
VOUCHER_CODE_LENGTH = 8  # 40 bits: guessing is hopeless with the counter's rate limits
REFERRAL_CODE_LENGTH = 6
_NOT_CODE = re.compile(r"[^A-Z0-9]")


def random_code(length: int) -> str:
    """32 symbols are 5 bits each: one draw of 5 × length random bits, read 5 at a time (uniform, like a
    choice per symbol, and one system call instead of `length`: an imported list draws thousands)."""
    bits = secrets.randbits(5 * length)
    return "".join(ALPHABET[(bits >> (5 * i)) & 31] for i in range(length))


def normalize_code(text: str) -> str:
    """What a person typed ("abcd-efgh ", "ABCD EFGH") -> the stored form ("ABCDEFGH")."""
    return _NOT_CODE.sub("", text.upper())


def pretty_voucher_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}" if len(code) == VOUCHER_CODE_LENGTH else code


def unused_code(length: int, taken: Callable[[str], bool], attempts: int = 8) -> str:
    """A random code that `taken` says is free. With 32^length codes a second try is already rare."""
    for _ in range(attempts):
        code = random_code(length)
        if not taken(code):
            return code
    raise RuntimeError(f"no free {length}-character code after {attempts} tries")
