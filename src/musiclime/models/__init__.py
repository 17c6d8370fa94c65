"""Classifiers shipped with musiclime.

``DemoClassifier`` and its config and network are imported on first use (PEP 562), so that
importing a light module of this package (``musiclime.models.identity``, which every
Snakemake job's plan reads) does not import torch.
"""

from __future__ import annotations

__all__ = ["DemoClassifier", "DemoClassifierConfig", "DemoNet"]


def __getattr__(name: str):
    if name in __all__:
        from . import demo_classifier

        return getattr(demo_classifier, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
