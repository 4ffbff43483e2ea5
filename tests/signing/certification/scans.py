"""Test scans: JPEG/PNG pages with a visible page marker, and PDFs made from them."""

from __future__ import annotations

import subprocess
from io import BytesIO

from PIL import Image, ImageDraw

from signing.certification.stamp import images_to_pdf


def page_image(n: int, fmt: str = "JPEG", size: tuple[int, int] = (620, 877)) -> bytes:
    im = Image.new("RGB", size, "white")
    ImageDraw.Draw(im).text((40, 40), f"PAGE-MARK-{n}", fill="black")
    out = BytesIO()
    im.save(out, fmt)
    return out.getvalue()


def scan_pdf(pages: int) -> bytes:
    return images_to_pdf([page_image(i + 1) for i in range(pages)])


def pdftotext(pdf: bytes, page: int | None = None) -> str:
    args = ["pdftotext", "-layout"] + (["-f", str(page), "-l", str(page)] if page else []) + ["-", "-"]
    return subprocess.run(args, input=pdf, capture_output=True, check=True).stdout.decode()


def pdfinfo_pages(pdf: bytes) -> int:
    out = subprocess.run(["pdfinfo", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    return int(next(line.split()[1] for line in out.splitlines() if line.startswith("Pages:")))
