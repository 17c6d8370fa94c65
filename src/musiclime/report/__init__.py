"""Reports of explanations for people: self-contained HTML pages (figures: :mod:`musiclime.report.plots`)."""

from .page import PAGE_CODECS, render_explanation_page, write_explanation_page

__all__ = ["PAGE_CODECS", "render_explanation_page", "write_explanation_page"]
