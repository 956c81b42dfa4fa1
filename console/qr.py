"""QR codes for claim URLs: SVG for screens and print, PNG for POS systems."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg
from qrcode.constants import ERROR_CORRECT_M


def qr_svg(data: str) -> str:
    code = qrcode.QRCode(
        error_correction=ERROR_CORRECT_M, box_size=10, border=2, image_factory=qrcode.image.svg.SvgPathImage
    )
    code.add_data(data)
    out = io.BytesIO()
    code.make_image().save(out)
    return out.getvalue().decode()


def qr_png(data: str) -> bytes:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=2)
    code.add_data(data)
    out = io.BytesIO()
    code.make_image().save(out)
    return out.getvalue()
