"""The certification block (spec §2.2) on the last page, and scans assembled into a PDF. Pure, no I/O.

The block is a pyHanko :class:`~pyhanko.stamp.TextStamp` (public API) written as an incremental
update, with DejaVu Sans embedded (the 1000-upem copy the signing appearances use, see
``signing/fonts/README.md``) so that every Vietnamese letter is drawn and extractable. No page is
ever added: that would change the page count and the fee.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from io import BytesIO
from typing import Any

from PIL import Image, UnidentifiedImageError
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.stamp import TextStamp, TextStampStyle

from signing.certification.errors import CertificationError
from signing.certification.stampfont import StampFontFactory
from signing.engine import FONT_PATH

#: the signing font cut to Latin + Vietnamese, unhinted (signing/fonts/README.md), drawn by
#: :mod:`signing.certification.stampfont`, which reads and compresses it once per process
STAMP_FONT_PATH = FONT_PATH.with_name("DejaVuSans-vi-1000upem.ttf")
#: the code points that font draws (signing/fonts/README.md)
_COVERED = ((0x20, 0x7E), (0xA0, 0x17F), (0x1A0, 0x1B0), (0x300, 0x323), (0x1E00, 0x1EFF), (0x2010, 0x2027),
            (0x2030, 0x203A), (0x20AB, 0x20AC), (0x2116, 0x2116))


def printable(text: str) -> bool:
    """True when the block's font draws every character of ``text`` (after NFC)."""
    return all(any(a <= ord(c) <= b for a, b in _COVERED) for c in unicodedata.normalize("NFC", text))


MM = 72 / 25.4
#: default block: 80 × 45 mm, bottom right, 10 mm from the edges (spec §2.2 layout [POLICY])
BLOCK_W, BLOCK_H, MARGIN = 80 * MM, 45 * MM, 10 * MM
STATEMENT = "Chứng thực bản sao đúng với bản chính"
CERTIFIER_LABEL = "Người thực hiện chứng thực"
_FONT = StampFontFactory(str(STAMP_FONT_PATH), font_size=8)


class BadDocument(CertificationError):
    """The scan cannot be read as a PDF or an image, or the block cannot be placed."""

    code = "invalid_document"


@dataclass(frozen=True)
class StampText:
    cert_number: int
    book_name: str
    certified_at: datetime  # already in Asia/Ho_Chi_Minh
    certifier_name: str
    certifier_title: str
    authority_name: str

    def lines(self) -> list[str]:
        """The block's lines, in order; the spec's five elements (the certifier's takes three lines:
        label, title, name, as the spec's example shows)."""
        d = self.certified_at
        return [STATEMENT,
                f"Số chứng thực: {self.cert_number}  Quyển số: {self.book_name}",
                f"Ngày {d.day:02d} tháng {d.month:02d} năm {d.year:04d}",
                CERTIFIER_LABEL,
                self.certifier_title,
                self.certifier_name,
                self.authority_name]


@dataclass(frozen=True)
class Position:
    """Lower-left corner of the block on the last page, in PDF points."""

    x: float
    y: float


def page_count(pdf: bytes) -> int:
    """Raises BadDocument."""
    try:
        return int(PdfFileReader(BytesIO(pdf), strict=False).root["/Pages"]["/Count"])
    except (PdfError, KeyError, ValueError, TypeError) as exc:
        raise BadDocument(f"not a readable PDF: {exc}", field="file") from exc


def stamp_last_page(pdf: bytes, text: StampText, position: Position | None = None) -> bytes:
    """The PDF with the block drawn on its last page (an incremental update); raises BadDocument."""
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        if reader.encrypted:
            raise BadDocument("the PDF is encrypted; send the scan without encryption", field="file")
        writer = IncrementalPdfFileWriter.from_reader(reader)
        last = int(writer.root["/Pages"]["/Count"]) - 1
        pos = _fit(_last_box(writer, last + 1), position)
        stamp = TextStamp(writer, _style(text), box=layout.BoxConstraints(width=BLOCK_W, height=BLOCK_H))
        stamp.apply(last, int(pos.x), int(pos.y))
        out = BytesIO()
        writer.write(out)  # type: ignore[no-untyped-call]
        return out.getvalue()
    except (PdfError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise BadDocument(f"cannot place the certification block: {exc}", field="file") from exc


def inspect(pdf: bytes, position: Position | None = None) -> tuple[int, Position]:
    """The scan's page count and where the block goes on its last page, from one read of the PDF;
    raises BadDocument (unreadable, no page, or the block does not fit). Called before a number is
    reserved, so a misplaced block never costs a number."""
    try:
        reader = PdfFileReader(BytesIO(pdf), strict=False)
        if reader.encrypted:
            raise BadDocument("the PDF is encrypted; send the scan without encryption", field="file")
        count = int(reader.root["/Pages"]["/Count"])
        if count < 1:
            raise BadDocument("the scan has no page", field="file")
        return count, _fit(_last_box(reader, count), position)
    except (PdfError, KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
        raise BadDocument(f"not a readable PDF: {exc}", field="file") from exc


def _last_box(pdf: Any, count: int) -> Any:
    """The last page's /MediaBox, inherited from the page tree when the page has none (reader or writer)."""
    page_ref, _ = pdf.find_page_for_modification(count - 1)
    node = page_ref.get_object()
    while "/MediaBox" not in node:
        node = node["/Parent"]
    return node["/MediaBox"]


def _fit(media_box: Any, position: Position | None) -> Position:
    x1, y1, x2, y2 = (float(v) for v in media_box)
    pos = position or Position(x2 - MARGIN - BLOCK_W, y1 + MARGIN)
    if pos.x < x1 or pos.y < y1 or pos.x + BLOCK_W > x2 or pos.y + BLOCK_H > y2:
        field = "stamp_position" if position is not None else "file"
        raise BadDocument(f"the {BLOCK_W / MM:.0f} × {BLOCK_H / MM:.0f} mm block does not fit on the last page "
                          "at that position", field=field)
    return pos


def _style(text: StampText) -> TextStampStyle:
    body = "\n".join(unicodedata.normalize("NFC", line).replace("%", "%%") for line in text.lines())
    return TextStampStyle(stamp_text=body, border_width=1, background=None,
                          text_box_style=TextBoxStyle(font=_FONT, font_size=8, leading=11))


def images_to_pdf(images: list[bytes]) -> bytes:
    """JPEG/PNG pages, in the order given, as one PDF (one page per image, A4-ish at 150 dpi or
    the image's own resolution); raises BadDocument naming the first bad part."""
    pages = []
    for i, data in enumerate(images):
        try:
            im = Image.open(BytesIO(data))
            if im.format not in ("JPEG", "PNG"):
                raise BadDocument(f"file part {i + 1} is {im.format}, expected JPEG or PNG", field=f"file[{i}]")
            pages.append(im.convert("RGB") if im.mode not in ("RGB", "L") else im)
        except (UnidentifiedImageError, OSError) as exc:
            raise BadDocument(f"file part {i + 1} is not a JPEG or PNG image", field=f"file[{i}]") from exc
    if not pages:
        raise BadDocument("no page given", field="file")
    out = BytesIO()
    pages[0].save(out, "PDF", save_all=True, append_images=pages[1:], resolution=150.0)
    return out.getvalue()
