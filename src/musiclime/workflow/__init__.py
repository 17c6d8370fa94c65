"""The Snakemake side of musiclime: sweep planning, stage functions, running and recovery.

``plan`` turns Hydra configs (one or a sweep) into the stage table Snakemake builds from;
``stages`` holds the function every rule calls; ``runner`` runs Snakemake (``musiclime run``),
``recovery`` cleans up after an interrupted one. MLflow is :mod:`musiclime.tracking`.
"""
