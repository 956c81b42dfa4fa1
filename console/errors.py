"""Error pages people can read: Vietnamese, in the console's look, for every address outside the JSON API
(which answers in its own error shape) and the webhook (which answers Zalo with bare status codes)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, render_template, request
from markupsafe import escape
from werkzeug.exceptions import HTTPException

from console.api.views import api_http_error
from tichdiem.extensions import get_session

log = logging.getLogger(__name__)
PLAIN = '<!doctype html><html lang="vi"><meta charset="utf-8"><title>{title}</title><h1>{title}</h1><p>{text}</p>'

MESSAGES = {
    400: ("Yêu cầu không hợp lệ", "Trang nhận được dữ liệu không đúng. Hãy quay lại và thử lại."),
    401: ("Cần đăng nhập", "Hãy đăng nhập để tiếp tục."),
    403: ("Không có quyền", "Tài khoản của bạn không mở được trang này. Hãy hỏi chủ cửa hàng nếu bạn cần."),
    404: ("Không tìm thấy trang", "Địa chỉ này không có hoặc đã bị xóa. Kiểm tra lại đường dẫn."),
    405: ("Không hỗ trợ thao tác này", "Trang này không nhận cách gửi yêu cầu đó."),
    413: ("Tệp quá lớn", "Tệp tải lên vượt quá giới hạn cho phép."),
    429: ("Quá nhiều yêu cầu", "Vui lòng chờ một lát rồi thử lại."),
    500: ("Có lỗi xảy ra", "Máy chủ gặp lỗi khi xử lý yêu cầu. Dữ liệu của bạn không bị mất; hãy thử lại sau."),
}


def register(app: Flask) -> None:
    app.register_error_handler(HTTPException, _page)


def _page(exc: HTTPException) -> Any:
    if request.path.startswith("/api/"):
        return api_http_error(exc)
    if request.path.startswith(("/webhooks/", "/healthz", "/_emulator/")):
        return exc  # machines read these: the status code is the answer
    code = exc.code or 500
    title, text = MESSAGES.get(code, (exc.name, ""))
    if exc.description and exc.description != type(exc).description:
        text = exc.description  # a reason the view gave in Vietnamese (e.g. a throttle's)
    try:
        if code >= 500:
            get_session().rollback()  # the page's menu reads the database: not through a failed transaction
        return render_template("console/error.html", code=code, title=title, text=text), code
    except Exception:  # noqa: BLE001 - the database itself may be what failed: a page without the menu
        log.exception("error page for %s could not be drawn", code)
        return Response(PLAIN.format(title=escape(title), text=escape(text)), status=code, mimetype="text/html")
