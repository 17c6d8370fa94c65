"""Text that a figure can draw: lyrics and song ids in any script.

matplotlib draws text with DejaVu Sans, which has no CJK characters and no emoji; for each
character it lacks it warns ("Glyph 22812 missing from font(s) DejaVu Sans") at every draw,
about 40 warnings for one lyrics chart, and draws a box. :class:`FigureText` prepares the
strings of one figure instead: the installed fonts that cover more scripts
(:data:`FALLBACK_FONTS`, e.g. Debian's ``fonts-noto-cjk``) join DejaVu Sans as fallbacks
(:func:`font_family`, matplotlib >= 3.6 falls back glyph by glyph), a character none of them
has is drawn as a box without a warning, and one line per figure says which characters those
were and which package provides them. ``$`` is escaped, so lyrics with prices are not read as
mathtext.
"""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

#: matplotlib's default text font
BASE_FONT = "DejaVu Sans"
#: fonts with CJK characters, symbols or emoji, tried after DejaVu Sans where installed
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR",
                  "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
                  "Droid Sans Fallback", "Noto Sans Symbols 2", "Noto Emoji", "Symbola")
#: what a character no installed font has is drawn as (DejaVu Sans has it)
MISSING = "\u25a1"
#: shown in the warning: where the fonts come from
FONT_PACKAGES = ("Debian/Ubuntu: fonts-noto-cjk for Chinese, Japanese and Korean, "
                 "fonts-symbola for symbols and emoji")


@functools.lru_cache(maxsize=1)
def font_family() -> tuple[str, ...]:
    """:data:`BASE_FONT`, then the :data:`FALLBACK_FONTS` that are installed."""
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return (BASE_FONT, *(name for name in FALLBACK_FONTS if name in installed))


@functools.lru_cache(maxsize=1)
def _covered() -> frozenset[int]:
    """Every code point some font of :func:`font_family` has a glyph for."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    points: set[int] = set()
    for name in font_family():
        try:
            path = font_manager.findfont(font_manager.FontProperties(family=name),
                                         fallback_to_default=False)
            points.update(FT2Font(path).get_charmap())
        except (ValueError, OSError, RuntimeError):
            continue
    return frozenset(points)


class FigureText:
    """The strings of one figure: ``text = FigureText(); ax.set_title(text(title))``, then
    :meth:`report` once the figure is done."""

    def __init__(self) -> None:
        self.missing: dict[str, None] = {}  # in order of first appearance

    @property
    def family(self) -> list[str]:
        """The font family list to give every text drawn with :meth:`__call__`'s strings."""
        return list(font_family())

    def __call__(self, text: str) -> str:
        covered = _covered()
        out = []
        for ch in str(text):
            if ch == "$":
                out.append(r"\$")
            elif ch.isspace() or ord(ch) in covered or not covered:
                out.append(ch)
            else:
                self.missing.setdefault(ch)
                out.append(MISSING)
        return "".join(out)

    def report(self, what: object) -> None:
        """One warning for the figure ``what`` (its path or name) when characters were
        missing."""
        if not self.missing:
            return
        shown = " ".join(list(self.missing)[:12]) + (" ..." if len(self.missing) > 12 else "")
        log.warning("%s: no installed font has %d character(s) of its text (%s): they are "
                    "drawn as %s. Install a font that has them (%s) to see them; the "
                    "explanation's JSON and page keep the text as it is", what,
                    len(self.missing), shown, MISSING, FONT_PACKAGES)
