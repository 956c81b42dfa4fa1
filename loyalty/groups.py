"""Member groups: named sets of members a shop keeps ("Khách sỉ", "Nhân viên công ty A"), filled from an
import's "Nhóm" column or picked in the member list, and used as a broadcast audience."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models import MemberGroup, insert_ignore

MAX_GROUP_NAME = 60
SEPARATORS = (",", ";", "|")


class GroupNameError(ValueError):
    pass


def clean_group(name: str) -> str:
    """One group's name, spaces tidied; GroupNameError if empty or too long."""
    name = " ".join(name.split())
    if not name or len(name) > MAX_GROUP_NAME:
        raise GroupNameError(f"Tên nhóm cần 1–{MAX_GROUP_NAME} ký tự.")
    return name


def split_groups(cell: str) -> list[str]:
    """The groups in an import cell: "Khách sỉ, VIP" -> ["Khách sỉ", "VIP"] (blank parts dropped)."""
    for separator in SEPARATORS[1:]:
        cell = cell.replace(separator, SEPARATORS[0])
    return list(dict.fromkeys(clean_group(part) for part in cell.split(",") if part.strip()))


def add_to_group(session: Session, member_ids: Iterable[int], name: str, now: datetime) -> int:
    """Put members in a group (already there: nothing happens); returns how many were added."""
    added = 0
    for member_id in dict.fromkeys(member_ids):
        values = {"member_id": member_id, "name": name, "created_at": now}
        if insert_ignore(session, MemberGroup, values, ["member_id", "name"]) is not None:
            added += 1
    return added


def remove_from_group(session: Session, member_id: int, name: str) -> None:
    session.execute(delete(MemberGroup).where(MemberGroup.member_id == member_id, MemberGroup.name == name))


def groups_of(session: Session, member_id: int) -> list[str]:
    stmt = select(MemberGroup.name).where(MemberGroup.member_id == member_id).order_by(MemberGroup.name)
    return list(session.scalars(stmt))


def all_groups(session: Session) -> list[tuple[str, int]]:
    """Every group with its number of members, by name."""
    stmt = select(MemberGroup.name, func.count()).group_by(MemberGroup.name).order_by(MemberGroup.name)
    return [(name, int(count)) for name, count in session.execute(stmt)]
