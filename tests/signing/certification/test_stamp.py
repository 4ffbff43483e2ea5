"""The certification block: the spec's lines exactly, Vietnamese intact, on the last page, no page added."""

from __future__ import annotations

from datetime import datetime
from io import BytesIO

import pytest
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.certification.stamp import BadDocument, Position, StampText, images_to_pdf, page_count, stamp_last_page
from tests.signing.certification.scans import page_image, pdfinfo_pages, pdftotext, scan_pdf

TEXT = StampText(125, "01/2025-SCTĐT/BS", datetime(2025, 3, 5, 10, 0), "Nguyễn Văn Ánh",
                 "Công chức Tư pháp – Hộ tịch", "UBND xã Hòa Bình, tỉnh Quảng Ngãi")
LINES = ["Chứng thực bản sao đúng với bản chính",
         "Số chứng thực: 125  Quyển số: 01/2025-SCTĐT/BS",
         "Ngày 05 tháng 03 năm 2025",
         "Người thực hiện chứng thực",
         "Công chức Tư pháp – Hộ tịch",
         "Nguyễn Văn Ánh",
         "UBND xã Hòa Bình, tỉnh Quảng Ngãi"]


def test_block_lines_exact_on_last_page_and_no_page_added() -> None:
    """pdftotext of the last page gives the block's lines exactly (diacritics, zero-padded date, two
    spaces before Quyển số); the other pages carry no block; the page count is unchanged."""
    pdf = scan_pdf(3)
    out = stamp_last_page(pdf, TEXT)
    assert pdfinfo_pages(out) == page_count(out) == 3
    last = [line.strip() for line in pdftotext(out, 3).splitlines() if line.strip()]
    assert [line for line in last if not line.startswith("PAGE-MARK")] == LINES
    assert "Chứng thực" not in pdftotext(out, 1) + pdftotext(out, 2)


def test_given_position_and_refused_position() -> None:
    """The officer may move the block; a position off the page is refused naming stamp_position."""
    out = stamp_last_page(scan_pdf(1), TEXT, Position(20, 20))
    assert "Số chứng thực: 125  Quyển số: 01/2025-SCTĐT/BS" in pdftotext(out, 1)
    with pytest.raises(BadDocument) as exc:
        stamp_last_page(scan_pdf(1), TEXT, Position(5000, 20))
    assert exc.value.field == "stamp_position"


def test_images_assembled_in_the_order_given() -> None:
    """JPEG and PNG parts become one page each, in order."""
    pdf = images_to_pdf([page_image(2, "PNG"), page_image(1, "JPEG"), page_image(3, "PNG")])
    assert page_count(pdf) == 3
    # images carry no text: the order is told by each page's width (image width at 150 dpi)
    sizes = [page_image(n, "PNG", (300 + 10 * n, 400)) for n in (3, 1, 2)]
    reader = PdfFileReader(BytesIO(images_to_pdf(sizes)), strict=False)
    widths = [round(float(reader.root["/Pages"]["/Kids"][i]["/MediaBox"][2]) * 150 / 72) for i in range(3)]
    assert widths == [330, 310, 320]


def test_bad_parts_are_refused_naming_the_part() -> None:
    """Garbage or a GIF is refused as file[i]; a non-PDF as file."""
    with pytest.raises(BadDocument) as exc:
        images_to_pdf([page_image(1), b"not an image"])
    assert exc.value.field == "file[1]"
    gif = BytesIO()
    Image.new("RGB", (10, 10)).save(gif, "GIF")
    with pytest.raises(BadDocument):
        images_to_pdf([gif.getvalue()])
    with pytest.raises(BadDocument) as exc:
        stamp_last_page(b"%PDF-1.7 garbage", TEXT)
    assert exc.value.field == "file"
