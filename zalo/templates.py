"""ZBS template parameters: our values, checked against the types and lengths Zalo approved the template with.

Zalo reviews a template with typed, length-limited parameters (`listParams` of /template/info/v2: name,
require, type, minLength, maxLength, acceptNull) and refuses a message whose values do not fit (-1121 for a
value too long). Checking before the call gives the report a reason a shop can act on, and costs nothing.
Types are not fully documented (reference §4, UNCERTAIN): NUMBER and CURRENCY take digits, DATE a dd/mm/yyyy
date; any other type is checked for length only. Lengths count characters after NFC normalisation (a
Vietnamese letter typed as a base letter plus combining marks is one character, as Zalo counts it).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any

_DIGITS = re.compile(r"\d+")


class TemplateDataError(ValueError):
    """The values do not fit the template; the message (Vietnamese) says which parameter and why."""


def template_data(
    params: list[dict[str, Any]], mapping: Mapping[str, str], values: Mapping[str, Any]
) -> dict[str, str]:
    """{parameter: value} for every parameter of the template, from `values` by the marketer's `mapping`."""
    data: dict[str, str] = {}
    for param in params:
        name = str(param.get("name", ""))
        field = mapping.get(name)
        raw = values.get(field) if field else None
        value = unicodedata.normalize("NFC", str(raw).strip()) if raw not in (None, "") else ""
        if not value:
            if param.get("require") and not param.get("acceptNull"):
                raise TemplateDataError(f"tham số {name} của mẫu tin bắt buộc nhưng không có giá trị")
            continue
        data[name] = _typed(name, str(param.get("type", "")).upper(), value)
        _check_length(name, param, data[name])
    return data


def _typed(name: str, kind: str, value: str) -> str:
    if kind in ("NUMBER", "CURRENCY"):
        digits = "".join(_DIGITS.findall(value))  # "1.250" as we show points -> "1250"
        if not digits:
            raise TemplateDataError(f"tham số {name} cần một số, không phải “{value}”")
        return digits
    if kind == "DATE":
        try:
            datetime.strptime(value, "%d/%m/%Y")
        except ValueError as exc:
            raise TemplateDataError(f"tham số {name} cần ngày dạng dd/mm/yyyy, không phải “{value}”") from exc
    return value


def _check_length(name: str, param: dict[str, Any], value: str) -> None:
    longest, shortest = _int(param.get("maxLength")), _int(param.get("minLength"))
    if longest and len(value) > longest:
        raise TemplateDataError(f"tham số {name} dài {len(value)} ký tự, mẫu tin cho tối đa {longest}")
    if shortest and len(value) < shortest:
        raise TemplateDataError(f"tham số {name} ngắn hơn {shortest} ký tự")


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
