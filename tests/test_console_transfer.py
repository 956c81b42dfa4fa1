"""Import members from CSV/XLSX (preview, per-row errors, normalisation, merge by phone, job) and exports."""

import csv
import io
import unicodedata
from datetime import UTC, date, datetime

import pytest
from flask import Flask
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from loyalty import earning
from loyalty.members import create_member
from loyalty.program import ProgramRules
from models import AuditLog, Member, MemberImport
from tests.conftest import REDIS_TEST_URL
from tests.console_support import login, staffed_shop, text_of
from tests.helpers import Console, run_jobs

BIRTHDAY_LIST = (
    "Họ tên,Số điện thoại,Ngày sinh\n"
    "Nguyễn Thị Lan,0912 345 678,12/05/1990\n"
    "Trần Minh,+84 987 654 321,1985-11-03\n"
    "Chị Hoa,0901234567,03/02\n"
    "Sai số,12345,01/01/1990\n"
    "Không số,,01/01/1990\n"
    "Ngày sai,0933333333,31/02/1990\n"
    "Lan lần hai,0912345678,\n"
)


@pytest.fixture
def shop(session: Session) -> dict:
    return staffed_shop(session)


def upload(console: Console, filename: str, content: bytes, **form: str):
    """Upload, then let the check job read every row (as the worker does), so the preview is ready."""
    data = {"file": (io.BytesIO(content), filename), **form}
    response = console.post("/admin/import", data, page="/admin/import", content_type="multipart/form-data")
    run_jobs(console.client.application)
    return response


def xlsx(rows: list[list]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_csv_preview_shows_per_row_errors_and_writes_nothing(app: Flask, session: Session, shop) -> None:
    mkt = login(app, "mkt")
    response = upload(mkt, "sinh-nhat.csv", BIRTHDAY_LIST.encode())
    assert response.status_code == 302
    page = text_of(mkt.get(response.headers["Location"]))
    assert '<strong id="n-create">3</strong> thêm mới' in page and '<strong id="n-error">4</strong> lỗi' in page
    assert "Số điện thoại “12345” không hợp lệ." in page
    assert "Thiếu số điện thoại." in page
    assert "Ngày sinh không có thật." in page
    assert "Trùng số điện thoại với dòng 2." in page
    assert "<td>0987654321</td><td>03/11/1985</td>" in page and "<td>03/02</td>" in page
    assert session.scalar(select(func.count()).select_from(Member)) == 0


def test_confirm_runs_the_job_and_merges_by_phone(app: Flask, session: Session, shop) -> None:
    known = create_member(session, now=datetime.now(UTC), name="Lan", phone="84912345678")
    session.commit()
    mkt = login(app, "mkt")
    job_page = upload(mkt, "sinh-nhat.csv", BIRTHDAY_LIST.encode()).headers["Location"]
    import_id = int(job_page.rsplit("/", 1)[1])
    mkt.post(f"/admin/import/{import_id}/confirm", page=job_page)
    mkt.post(f"/admin/import/{import_id}/confirm", page=job_page)  # a double click queues nothing more
    assert mkt.get(f"/admin/import/{import_id}/progress").json["live"] is True
    run_jobs(app)
    progress = mkt.get(f"/admin/import/{import_id}/progress").json
    assert progress["status"] == "done" and progress["percent"] == 100
    assert {c["key"]: c["n"] for c in progress["counts"]} == {"create": 2, "update": 1, "same": 0, "error": 4}
    session.expire_all()
    assert session.get(Member, known.id).birthday == date(1990, 5, 12)  # filled in, name kept
    assert session.get(Member, known.id).name == "Lan"
    hoa = session.scalar(select(Member).where(Member.phone == "84901234567"))
    assert hoa.name == "Chị Hoa" and hoa.source == "import" and hoa.birthday.strftime("%d/%m") == "03/02"
    assert session.scalar(select(func.count()).select_from(Member)) == 3
    assert session.scalar(select(AuditLog.action)) == "import"
    # the same file again: nothing new
    again = upload(mkt, "sinh-nhat.csv", BIRTHDAY_LIST.encode()).headers["Location"]
    assert '<strong id="n-create">0</strong> thêm mới' in text_of(mkt.get(again))


def test_xlsx_with_numbers_and_dates_from_excel(app: Flask, session: Session, shop) -> None:
    content = xlsx(
        [
            ["STT", "Tên khách hàng", "SĐT", "Sinh nhật"],
            [1, "Phạm Thu", 912000111, datetime(1995, 8, 20)],  # Excel dropped the leading 0
            [2, "Lê Bình", "0389 000 222", "20.08.1999"],
        ]
    )
    mkt = login(app, "mkt")
    job_page = upload(mkt, "khach.xlsx", content, overwrite="on").headers["Location"]
    assert '<strong id="n-create">2</strong>' in text_of(mkt.get(job_page))
    mkt.post(job_page + "/confirm", page=job_page)
    run_jobs(app)
    thu = session.scalar(select(Member).where(Member.phone == "84912000111"))
    assert thu.name == "Phạm Thu" and thu.birthday == date(1995, 8, 20)
    assert session.scalar(select(Member.birthday).where(Member.phone == "84389000222")) == date(1999, 8, 20)
    assert session.get(MemberImport, int(job_page.rsplit("/", 1)[1])).status == "done"


def test_unreadable_files_are_refused_clearly(app: Flask, session: Session, shop) -> None:
    mkt = login(app, "mkt")
    no_phone = upload(mkt, "a.csv", "Họ tên,Email\nLan,lan@example.com\n".encode())
    assert no_phone.status_code == 400 and "Không tìm thấy cột số điện thoại" in text_of(no_phone)
    assert "Chỉ nhận tệp .csv hoặc .xlsx" in text_of(upload(mkt, "a.pdf", b"%PDF"))
    assert "Không mở được tệp Excel." in text_of(upload(mkt, "a.xlsx", b"not a zip"))
    assert "Chọn tệp .csv hoặc .xlsx" in text_of(mkt.post("/admin/import", {}, page="/admin/import"))
    assert login(app, "thu-ngan").get("/admin/import").status_code == 403


def windows_1258(text: str) -> bytes:
    """How Windows writes Vietnamese: base letters like ê precomposed, tone marks as combining characters."""
    out = b""
    for char in text:
        try:
            out += char.encode("cp1258")
        except UnicodeEncodeError:
            base, *marks = unicodedata.normalize("NFD", char)
            for mark in marks if len(marks) == 2 else []:  # ặ = ă + dot below: keep the one cp1258 has
                letter = unicodedata.normalize("NFC", base + mark)
                if len(letter) == 1 and letter.encode("cp1258", errors="ignore"):
                    base, marks = letter, [m for m in marks if m != mark]
                    break
            out += (base + "".join(marks)).encode("cp1258")
    return out


def test_semicolons_and_windows_vietnamese(app: Flask, session: Session, shop) -> None:
    content = windows_1258("Họ tên;SĐT\nĐặng Văn Ân;0977111222\n")
    mkt = login(app, "mkt")
    job_page = upload(mkt, "cu.csv", content).headers["Location"]
    assert "Đặng Văn Ân" in text_of(mkt.get(job_page))


def download(console: Console, path: str):
    """Read a streamed response to the end and close it, as a WSGI server does (ending the request)."""
    response = console.get(path)
    response.get_data()
    response.close()
    return response


def test_export_members_and_ledger(app: Flask, session: Session, services, shop) -> None:
    now = datetime.now(UTC)
    lan = create_member(session, now=now, name="Nguyễn Thị Lan", phone="84912345678", birthday=date(1990, 5, 12))
    session.commit()
    earning.earn(session, lan.id, 250_000, key="b1", rules=ProgramRules(), tz=services.settings.tz, now=now)
    session.commit()
    mkt = login(app, "mkt")
    members_csv = download(mkt, "/admin/export/members.csv")
    assert members_csv.headers["Content-Disposition"].startswith('attachment; filename="members-')
    rows = list(csv.reader(io.StringIO(members_csv.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:4] == ["Mã", "Họ tên", "Số điện thoại", "Ngày sinh"]
    assert rows[1][1:4] == ["Nguyễn Thị Lan", "0912345678", "12/05/1990"] and rows[1][5] == "25"
    ledger_xlsx = download(mkt, "/admin/export/ledger.xlsx")
    sheet = load_workbook(io.BytesIO(ledger_xlsx.data)).active
    values = list(sheet.iter_rows(values_only=True))
    assert values[0][3] == "Loại" and values[1][2:6] == ("Nguyễn Thị Lan", "Tích điểm", 25, 25)
    empty = download(mkt, "/admin/export/ledger.csv?from=2020-01-01&to=2020-01-31").get_data(as_text=True)
    assert len(empty.strip().splitlines()) == 1  # the header only
    assert mkt.get("/admin/export/ledger.csv?from=hôm-qua").status_code == 400
    create_member(session, now=now, name="Trần Minh", birthday=date(1988, 7, 1))
    session.commit()
    july = download(mkt, "/admin/export/members.csv?birthday_month=7").get_data(as_text=True)
    assert "Trần Minh" in july and "Nguyễn Thị Lan" not in july  # the list as filtered on the page
    assert "/admin/export/members.xlsx?birthday_month=7" in mkt.get("/admin/members?birthday_month=7").text
    actions = list(session.scalars(select(AuditLog.action)))
    assert actions.count("export") == 4


def test_a_large_list_runs_in_chunks_with_progress(app: Flask, session: Session, shop, monkeypatch) -> None:
    from jobs import imports

    monkeypatch.setattr(imports, "CHUNK", 100)
    saved: list[int] = []
    real_save = imports._save_progress

    def spy(db, import_id, counts, processed, finished_at):  # what the progress bar reads, chunk by chunk
        saved.append(processed)
        real_save(db, import_id, counts, processed, finished_at)

    monkeypatch.setattr(imports, "_save_progress", spy)
    lines = ["Họ tên,SĐT"] + [f"Khách {i},09{i:08d}" for i in range(250)] + ["Trùng,0900000007"]
    mkt = login(app, "mkt")
    job_page = upload(mkt, "lon.csv", "\n".join(lines).encode()).headers["Location"]
    assert '<strong id="n-create">250</strong>' in text_of(mkt.get(job_page))
    mkt.post(job_page + "/confirm", page=job_page)
    run_jobs(app)
    assert saved == [100, 200, 251, 251]
    progress = mkt.get(job_page + "/progress").json
    assert {c["key"]: c["n"] for c in progress["counts"]} == {"create": 250, "update": 0, "same": 0, "error": 1}
    assert session.scalar(select(func.count()).select_from(Member)) == 250
    job = session.get(MemberImport, int(job_page.rsplit("/", 1)[1]))
    assert job.error_rows == [{"line": 252, "message": "Trùng số điện thoại với dòng 9."}]


def test_a_file_over_the_limit_is_refused_in_words(app: Flask, session: Session, shop) -> None:
    mkt = login(app, "mkt")
    response = upload(mkt, "to.csv", b"x" * (16 * 1024 * 1024))
    assert response.status_code == 413 and "Tệp quá lớn (tối đa 15 MB)" in text_of(response)


def test_import_job_on_real_redis_and_a_real_worker(settings, real_redis, session: Session, shop) -> None:
    """The page's confirm goes through a real Redis queue; a second worker run finds nothing to do."""
    from jobs.worker import make_worker
    from tichdiem.app import create_app

    app = create_app(settings.with_overrides(redis_url=REDIS_TEST_URL), config={"TESTING": True})
    mkt = login(app, "mkt")
    job_page = upload(mkt, "sinh-nhat.csv", BIRTHDAY_LIST.encode()).headers["Location"]
    mkt.post(job_page + "/confirm", page=job_page)
    queue = app.extensions["tichdiem"].queue
    assert queue.count == 1
    make_worker(app.extensions["tichdiem"], simple=True).work(burst=True, logging_level="WARNING")
    assert mkt.get(job_page + "/progress").json["status"] == "done"
    assert session.scalar(select(func.count()).select_from(Member)) == 3
    mkt.post(job_page + "/confirm", page=job_page)  # confirming a finished import queues nothing
    assert queue.count == 0
    app.extensions["tichdiem"].engine.dispose()
