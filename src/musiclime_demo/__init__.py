"""Tools that make musiclime's shipped demo data; not part of the ``musiclime`` library.

Nothing in ``musiclime`` imports this package: a user explaining their own model never loads
the corpus renderer or the trainers.

* :mod:`musiclime_demo.corpus` renders the deterministic demo corpus (mix, ground-truth
  stems, lyrics, evidence annotations, manifest).
* :mod:`musiclime_demo.train_separator` trains and evaluates the small Open-Unmix separator
  shipped in ``musiclime/assets/demo_separator``.
* :mod:`musiclime_demo.train_classifier` trains the demo classifier shipped in
  ``musiclime/assets/demo_classifier`` (its model and loader stay in
  :mod:`musiclime.models.demo_classifier`).
* :mod:`musiclime_demo.run` is ``make demo``: render the test songs once, then run the workflow.
"""
