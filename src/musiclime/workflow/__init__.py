"""The Snakemake side of musiclime: sweep planning, stage functions and MLflow tracking.

``plan`` turns Hydra configs (one or a sweep) into the stage table Snakemake builds from;
``stages`` holds the function every rule calls; ``tracking`` logs each configuration to MLflow.
"""
