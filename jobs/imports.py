"""Apply an uploaded member list in chunks, with progress the import page polls.

Each chunk is planned again and written in one transaction, so a retried or re-run job merges by phone
instead of duplicating; `processed` and the counts are saved after every chunk.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from jobs.context import current_services
from jobs.deferred import RETRY, enqueue_after_commit
from loyalty.member_import import (
    ImportCounts,
    ImportFileError,
    apply_rows,
    chunks,
    data_rows,
    plan_rows,
    preview,
    read_table,
)
from models import ImportStatus, MemberImport, rows_updated, utcnow

log = logging.getLogger(__name__)
CHUNK = 2000  # rows per transaction and progress update: a fifth of a second of work


def enqueue_import(session: Session, import_id: int) -> bool:
    """Mark a previewed import queued (once: a double click does nothing); its job starts after the commit."""
    claimed = rows_updated(
        session,
        update(MemberImport)
        .where(MemberImport.id == import_id, MemberImport.status == ImportStatus.PREVIEW)
        .values(status=ImportStatus.QUEUED),
    )
    if claimed:
        options = {"job_id": f"import-{import_id}", "job_timeout": 3600, "retry": RETRY}
        enqueue_after_commit(session, run_import, import_id, **options)
    return bool(claimed)


def check_after_commit(session: Session, import_id: int) -> None:
    """The uploaded list is read and checked by a job once its row is committed."""
    options = {"job_id": f"import-check-{import_id}", "job_timeout": 1800, "retry": RETRY}
    enqueue_after_commit(session, check_import, import_id, **options)


def check_import(import_id: int) -> str:
    """Read and check every row of an uploaded list (nothing written) and show the result for confirmation."""
    context = current_services()
    with context.sessions() as session:
        job = session.get(MemberImport, import_id)
        if job is None or job.status != ImportStatus.CHECKING:
            return job.status if job else "missing"
        today = utcnow().astimezone(context.settings.tz).date()
        try:
            checked = preview(session, job.filename, job.content, today, overwrite=job.overwrite)
        except ImportFileError as exc:
            return _fail(session, job, str(exc))
        job.status, job.total_rows = ImportStatus.PREVIEW, checked.total
        job.created, job.updated, job.unchanged = (
            checked.counts.created,
            checked.counts.updated,
            checked.counts.unchanged,
        )
        job.errors, job.error_rows = checked.counts.errors, checked.counts.error_rows
        session.commit()
    return ImportStatus.PREVIEW


def run_import(import_id: int) -> str:
    context = current_services()
    tz = context.settings.tz
    with context.sessions() as session:
        job = session.get(MemberImport, import_id)
        if job is None or job.status in (ImportStatus.DONE, ImportStatus.PREVIEW):
            return job.status if job else "missing"
        try:
            columns, rows = data_rows(read_table(job.filename, job.content))
        except ImportFileError as exc:
            return _fail(session, job, str(exc))
        overwrite, total = job.overwrite, len(rows)
        _start(session, job, total)
    counts, seen = ImportCounts(), dict[str, int]()
    for number, chunk in enumerate(chunks(rows, CHUNK), start=1):
        now = utcnow()
        with context.sessions() as session:
            planned = plan_rows(session, columns, chunk, now.astimezone(tz).date(), overwrite=overwrite, seen=seen)
            apply_rows(session, planned, now)
            counts.add(planned)
            _save_progress(session, import_id, counts, min(number * CHUNK, total), None)
            session.commit()
    with context.sessions() as session:
        _save_progress(session, import_id, counts, total, utcnow())
        session.commit()
    log.info("import %s: %s created, %s updated, %s errors", import_id, counts.created, counts.updated, counts.errors)
    return "done"


def _start(session: Session, job: MemberImport, total: int) -> None:
    job.status, job.total_rows, job.processed = ImportStatus.RUNNING, total, 0
    job.created = job.updated = job.unchanged = job.errors = 0
    session.commit()


def _save_progress(
    session: Session, import_id: int, counts: ImportCounts, processed: int, finished_at: datetime | None
) -> None:
    values = {
        "processed": processed,
        "created": counts.created,
        "updated": counts.updated,
        "unchanged": counts.unchanged,
        "errors": counts.errors,
        "error_rows": counts.error_rows,
    }
    if finished_at is not None:  # the list (everyone's names and phones) is not kept once applied
        values |= {"status": ImportStatus.DONE, "finished_at": finished_at, "content": b""}
    session.execute(update(MemberImport).where(MemberImport.id == import_id).values(**values))


def _fail(session: Session, job: MemberImport, reason: str) -> str:
    job.status, job.failure, job.finished_at, job.content = ImportStatus.FAILED, reason, utcnow(), b""
    session.commit()
    return "failed"
