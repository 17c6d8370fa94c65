"""The shipped demo: a synthetic song corpus with planted evidence and a small separator.

* :mod:`musiclime.demo.corpus` renders the deterministic demo corpus (mix, ground-truth
  stems, lyrics, evidence annotations, manifest).
* :mod:`musiclime.demo.train_separator` trains and evaluates the small Open-Unmix separator
  shipped in ``musiclime/assets/demo_separator``.
"""
