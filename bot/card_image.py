"""Drawing the member card: a PNG with the shop, the member, tier, points and the QR code."""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import qrcode
from PIL import Image, ImageDraw, ImageFont
from qrcode.constants import ERROR_CORRECT_M

from tichdiem.config import PROJECT_ROOT

FONTS = PROJECT_ROOT / "templates" / "cards" / "fonts"
WIDTH, HEIGHT = 900, 540
BACKGROUND = (24, 74, 69)
ACCENT = (244, 196, 48)
WHITE = (255, 255, 255)
MUTED = (196, 222, 216)
MAX_BYTES = 1_000_000  # Zalo's upload limit for images


@dataclass(frozen=True)
class CardFace:
    shop_name: str
    member_name: str
    tier_name: str
    points: str  # already formatted: "1.250"
    member_code: str
    token: str


@lru_cache(maxsize=8)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONTS / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")), size)


def render_card(face: CardFace) -> bytes:
    """A deterministic PNG (same face, same bytes) well under Zalo's 1 MB limit."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 12), fill=ACCENT)
    _text(draw, (48, 52), face.shop_name, _fitting_font(draw, face.shop_name, (40, 34, 28), 480), WHITE, max_width=480)
    _text(draw, (48, 110), "THẺ THÀNH VIÊN", _font(22), ACCENT, max_width=480)
    name = face.member_name or "Thành viên"
    _text(draw, (48, 190), name, _fitting_font(draw, name, (36, 30, 26), 480), WHITE, max_width=480)
    _text(draw, (48, 250), f"Hạng: {face.tier_name}", _font(28), MUTED, max_width=480)
    _text(draw, (48, 300), f"{face.points} điểm", _font(48, bold=True), ACCENT, max_width=480)
    _text(draw, (48, 440), f"Mã giới thiệu: {face.member_code}", _font(22), MUTED, max_width=480)
    qr = _qr(face.token)
    image.paste(qr, (WIDTH - qr.width - 48, (HEIGHT - qr.height) // 2 - 10))
    _text(draw, (WIDTH - qr.width - 48, (HEIGHT + qr.height) // 2), face.token, _font(14), MUTED, max_width=qr.width)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    data = out.getvalue()
    if len(data) > MAX_BYTES:  # cannot happen with this layout; a guard against future changes
        raise ValueError(f"card image is {len(data)} bytes, over Zalo's limit")
    return data


def _fitting_font(draw: ImageDraw.ImageDraw, text: str, sizes: tuple[int, ...], width: int) -> ImageFont.FreeTypeFont:
    """The largest bold size at which `text` fits, else the smallest (then it gets an ellipsis)."""
    for size in sizes:
        if draw.textlength(text, font=_font(size, bold=True)) <= width:
            return _font(size, bold=True)
    return _font(sizes[-1], bold=True)


def _qr(token: str) -> Image.Image:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=3)
    code.add_data(token)
    code.make(fit=True)
    image = code.make_image(fill_color="black", back_color="white").get_image().convert("RGB")
    return image.resize((340, 340), Image.Resampling.NEAREST)


def _text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[int, int],
    text: str,
    font: ImageFont.FreeTypeFont,
    fill: tuple[int, int, int],
    max_width: int,
) -> None:
    """Draw text, shortened with an ellipsis if it would run into the QR code."""
    while text and draw.textlength(text, font=font) > max_width:
        text = text[:-2] + "…"
    draw.text(xy, text, font=font, fill=fill)


@dataclass(frozen=True)
class StampFace:
    """A stamp card as the customer sees it. Nothing personal on it, so one upload serves every member at
    the same count (the caption carries their expiry date)."""

    shop_name: str
    card_name: str
    stamps: int
    needed: int
    reward_name: str


def render_stamp_card(face: StampFace) -> bytes:
    """The card with `stamps` of `needed` circles filled, the last one marked as the gift."""
    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, WIDTH, 12), fill=ACCENT)
    _text(draw, (48, 40), face.shop_name, _fitting_font(draw, face.shop_name, (34, 28, 24), 800), WHITE, 800)
    _text(draw, (48, 92), face.card_name, _fitting_font(draw, face.card_name, (30, 26, 22), 800), ACCENT, 800)
    per_row = face.needed if face.needed <= 6 else (face.needed + 1) // 2 if face.needed <= 12 else 10
    rows = -(-face.needed // per_row)
    size = min(120, (WIDTH - 96) // per_row - 16, (300 - 16 * (rows - 1)) // rows)
    gap = 16
    left = (WIDTH - per_row * size - (per_row - 1) * gap) // 2
    for index in range(face.needed):
        row, column = divmod(index, per_row)
        x, y = left + column * (size + gap), 150 + row * (size + gap)
        _stamp(draw, (x, y, x + size, y + size), filled=index < face.stamps, gift=index == face.needed - 1)
    _text(draw, (48, 470), f"{face.stamps}/{face.needed} tem · Đủ thẻ: {face.reward_name}", _font(24), MUTED, 800)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _stamp(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], *, filled: bool, gift: bool) -> None:
    if filled:
        draw.ellipse(box, fill=ACCENT)
        mark, colour = "✓", BACKGROUND
    else:
        draw.ellipse(box, outline=MUTED, width=4)
        mark, colour = ("QUÀ" if gift else ""), MUTED
    if mark:
        font = _font(max((box[2] - box[0]) // (2 if mark == "✓" else 4), 10), bold=True)
        cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
        draw.text((cx, cy), mark, font=font, fill=colour, anchor="mm")
