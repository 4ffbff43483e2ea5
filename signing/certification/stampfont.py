"""The certification block's font: a pyHanko :class:`~pyhanko.pdf_utils.font.api.FontEngine` whose
font program is read and compressed once per process, not once per copy.

pyHanko's ``GlyphAccumulator`` parses the TrueType file, shapes with HarfBuzz, and subsets and
re-saves the font with fontTools for every PDF it writes: about 40 ms of each certification, for a
block whose font never changes. This engine uses only pyHanko's public font API (``FontEngine``,
``FontEngineFactory``, ``ShapeResult``) and does, once per process (:func:`load`):

* read the font's cmap, advance widths and metrics;
* compress the whole font program (the stamp font is already cut to Latin + Vietnamese, unhinted,
  see ``signing/fonts/README.md``: about 22 KB compressed).

Per copy it only writes that cached program as a stream, plus what varies: the ``/W`` widths of the
glyphs used and the ``ToUnicode`` CMap, so that ``pdftotext`` reads the block back exactly.

Shaping is one glyph per code point with the font's advance widths. That is exactly what HarfBuzz
does with this font: it has no GSUB or GPOS (no ligatures, no kerning), and the text is NFC, so
every Vietnamese letter is one precomposed glyph.
"""

from __future__ import annotations

import functools
import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from fontTools.ttLib import TTFont
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory, ShapeResult
from pyhanko.pdf_utils.generic import pdf_name
from pyhanko.pdf_utils.writer import BasePdfFileWriter

_CMAP_HEAD = (b"/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
              b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
              b"/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
              b"1 begincodespacerange\n<0000> <FFFF>\nendcodespacerange\n")
_CMAP_TAIL = b"endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"


@dataclass(frozen=True)
class Font:
    """What the engine needs from the font file, read once per process."""

    base_name: str  # subset tag + PostScript name, e.g. ``ABCDEF+DejaVuSans``
    units_per_em: int
    glyph_of: Mapping[int, int]  # code point → glyph id
    advances: tuple[int, ...]  # glyph id → advance width, font units
    ascent: int
    descent: int
    cap_height: int
    bbox: tuple[int, int, int, int]
    italic_angle: float
    program: bytes  # the font file, FlateDecode'd
    length1: int  # its uncompressed length

    def width_1000(self, gid: int) -> int:
        """A glyph's advance in the PDF's 1/1000 em."""
        return round(self.advances[gid] * 1000 / self.units_per_em)


@functools.cache
def load(path: str) -> Font:
    """Reads and compresses the font once per process (each signing worker draws blocks)."""
    data = Path(path).read_bytes()
    tt = TTFont(BytesIO(data))
    order = tt.getGlyphOrder()
    ids = {name: i for i, name in enumerate(order)}
    hmtx, head, os2 = tt["hmtx"], tt["head"], tt["OS/2"]
    ps_name = str(tt["name"].getDebugName(6) or "StampFont").replace(" ", "")
    # a subset's tag is six capital letters (PDF 32000-1 §9.6.4); derived from the program, so stable
    tag = "".join(chr(65 + b % 26) for b in hashlib.sha256(data).digest()[:6])
    return Font(
        base_name=f"{tag}+{ps_name}", units_per_em=int(head.unitsPerEm),
        glyph_of={cp: ids[name] for cp, name in tt.getBestCmap().items()},
        advances=tuple(int(hmtx[name][0]) for name in order),
        ascent=int(tt["hhea"].ascent), descent=int(tt["hhea"].descent),
        cap_height=int(getattr(os2, "sCapHeight", 0) or tt["hhea"].ascent),
        bbox=(int(head.xMin), int(head.yMin), int(head.xMax), int(head.yMax)),
        italic_angle=float(tt["post"].italicAngle), program=zlib.compress(data, 9), length1=len(data),
    )


class StampFontEngine(FontEngine):
    """One per PDF writer (pyHanko's contract): records the glyphs used, writes the font at the end."""

    def __init__(self, writer: BasePdfFileWriter, font: Font, font_size: int) -> None:
        super().__init__(writer, font.base_name, embedded_subset=False, font_size=font_size)
        self.font = font
        self._ref = writer.allocate_placeholder()
        self._used: dict[int, str] = {}  # glyph id → the character it shows (ToUnicode)
        self._written = False

    @property
    def uses_complex_positioning(self) -> bool:
        return False  # one Tj per line: the text box moves to the next line with T*

    def shape(self, txt: str) -> ShapeResult:
        if not txt:
            return ShapeResult(b"", 0, 0)
        gids = [self.font.glyph_of.get(ord(c), 0) for c in txt]
        for gid, c in zip(gids, txt, strict=True):
            if gid:
                self._used.setdefault(gid, c)
        out = BytesIO()
        out.write(b"/Span ")  # the line's text as ActualText too, as pyHanko's own engine writes it
        _dict({"/ActualText": generic.TextStringObject(txt)}).write_to_stream(out)
        out.write(b" BDC <%s> Tj EMC" % "".join(f"{g:04x}" for g in gids).encode("ascii"))
        advance = sum(self.font.advances[g] for g in gids) / self.font.units_per_em
        return ShapeResult(graphics_ops=out.getvalue(), x_advance=advance, y_advance=0)

    def as_resource(self) -> generic.IndirectObject:
        return self._ref  # filled in by prepare_write, once every line was shaped

    def prepare_write(self) -> None:
        if self._written:
            return
        f, w = self.font, self.writer
        program = generic.StreamObject(_dict({"/Filter": pdf_name("/FlateDecode"), "/Length1": _num(f.length1)}),
                                       encoded_data=f.program)
        descriptor = _dict({
            "/Type": pdf_name("/FontDescriptor"), "/FontName": pdf_name("/" + f.base_name),
            "/Flags": _num(4),  # symbolic: glyphs are addressed by id, with no standard encoding
            "/FontBBox": generic.ArrayObject(_num(v) for v in f.bbox),
            "/ItalicAngle": generic.FloatObject(f.italic_angle),  # type: ignore[no-untyped-call]
            "/Ascent": _num(f.ascent), "/Descent": _num(f.descent), "/CapHeight": _num(f.cap_height),
            "/StemV": _num(80), "/FontFile2": w.add_object(program),
        })
        widths = generic.ArrayObject()
        for gid in sorted({0, *self._used}):
            widths.extend([_num(gid), generic.ArrayObject([_num(f.width_1000(gid))])])
        cid_font = _dict({
            "/Type": pdf_name("/Font"), "/Subtype": pdf_name("/CIDFontType2"), "/BaseFont": pdf_name("/" + f.base_name),
            "/CIDSystemInfo": _dict({"/Registry": generic.TextStringObject("Adobe"),
                                     "/Ordering": generic.TextStringObject("Identity"), "/Supplement": _num(0)}),
            "/FontDescriptor": w.add_object(descriptor),
            "/CIDToGIDMap": pdf_name("/Identity"),  # CID = glyph id
            "/W": widths,
        })
        type0 = _dict({
            "/Type": pdf_name("/Font"), "/Subtype": pdf_name("/Type0"),
            "/BaseFont": pdf_name(f"/{f.base_name}-Identity-H"), "/Encoding": pdf_name("/Identity-H"),
            "/DescendantFonts": generic.ArrayObject([w.add_object(cid_font)]),
            "/ToUnicode": w.add_object(_to_unicode(self._used)),
        })
        w.add_object(type0, idnum=self._ref.idnum)
        self._written = True


def _dict(entries: dict[str, generic.PdfObject]) -> generic.DictionaryObject:
    return generic.DictionaryObject({pdf_name(k): v for k, v in entries.items()})  # type: ignore[no-untyped-call]


def _num(value: int) -> generic.NumberObject:
    return generic.NumberObject(value)  # type: ignore[no-untyped-call]


def _to_unicode(used: Mapping[int, str]) -> generic.StreamObject:
    """The ToUnicode CMap: each glyph id used → its character (at most 100 entries per block)."""
    pairs = sorted(used.items())
    body = BytesIO()
    for i in range(0, len(pairs), 100):
        chunk = pairs[i:i + 100]
        body.write(b"%d beginbfchar\n" % len(chunk))
        for gid, c in chunk:
            body.write(b"<%04x> <%s>\n" % (gid, c.encode("utf-16-be").hex().encode("ascii")))
        body.write(b"endbfchar\n")
    stream = generic.StreamObject(stream_data=_CMAP_HEAD + body.getvalue() + _CMAP_TAIL)
    stream.compress()  # type: ignore[no-untyped-call]
    return stream


@dataclass(frozen=True)
class StampFontFactory(FontEngineFactory):
    """Picklable and cheap: the font itself is :func:`load`-ed once per process, on first use."""

    path: str
    font_size: int = 10

    def create_font_engine(self, writer: BasePdfFileWriter, obj_stream: object = None) -> StampFontEngine:
        return StampFontEngine(writer, load(self.path), self.font_size)
