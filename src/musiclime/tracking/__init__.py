"""MLflow tracking: one run per configuration (sweep point), nested under one parent run per
sweep; below the workflow layer, which passes it the plan and the results root.

The default store is embedded: SQLite at ``<results_root>/mlflow.db`` with artifacts in
``<results_root>/mlartifacts``; ``MLFLOW_TRACKING_URI`` (or ``tracking.uri``) sends everything to
an ``mlflow server`` instead. The workflow runs tracking jobs one at a time (Snakemake resource
``mlflow=1`` plus a file lock, :func:`.store.store_lock`).

Tracking is a recorder, never a gate:

- the SQLite store is created atomically (:func:`.store.create_store`: built and migrated in a
  temp file, then linked into place), before any job runs, so a kill -9 during its creation
  leaves no half-migrated store and two first runs cannot race inside MLflow's schema migration;
- a server is probed in seconds (:func:`.store.probe`); when it is unreachable the computation
  goes on and tracking is pending until the next ``musiclime run`` (or ``musiclime track``);
- a sweep has one parent run (keyed by its points, :func:`.store.open_parent_run`), reused by
  reruns; runs left RUNNING by a dead invocation are marked KILLED at the next start
  (:func:`.store.kill_stale_runs`);
- a point has one child run (:func:`.log.log_point`): a track job that re-runs because its point
  was recomputed logs a new run and deletes (soft, restorable in MLflow) the runs it supersedes,
  tagging the new one ``musiclime.supersedes``. A rerun that recomputed nothing runs no track job.

:mod:`.provenance` records what a run ran on (environment, dataset digests).
"""
