"""``musiclime reproduce RUN_ID``: rerun a recorded configuration and say whether it came out the
same.

For a child run (one configuration) or a parent run (each of its children):

1. read what the run recorded (:mod:`musiclime.tracking.provenance`): its overrides
   (``config/overrides.json``), its resolved config (``config/config.yaml``), its environment
   and its songs' digests;
2. say, one line each, what differs now: a package, Python, torch, CUDA, the device, the lock,
   a song whose file changed or is gone, a config value (a config default that changed since is
   pinned back to the recorded value with an override, so the rerun computes the recorded
   point: its point id must come out the same);
3. rerun the point with ``musiclime run`` into a fresh results root (tracking off: a check
   records nothing) and compare every song's explanation with the recorded one: the largest
   |weight difference| over every explained label and feature (intercepts too), and whether
   the predicted label's top 5 features are the same, in order.

It succeeds (exit 0) only when every song matches within ``atol`` (0 by default: bit for bit,
which holds on the same machine and lock) and no song's input changed. A run logged by an older
musiclime, without these records, is refused with one line.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .core.explanation import Explanation
from .errors import MusicLimeError
from .tracking.provenance import dataset_differences, environment_differences, environment_record

TOP_K = 5


@dataclass
class SongResult:
    song_id: str
    max_abs_dw: float
    top_same: bool
    note: str = ""

    def matches(self, atol: float) -> bool:
        return self.top_same and self.max_abs_dw <= atol and not self.note

    def line(self, atol: float) -> str:
        verdict = "same" if self.matches(atol) else "DIFFERS"
        text = (f"  {self.song_id}: {verdict}: max |dw| {self.max_abs_dw:.3g}, "
                f"top-{TOP_K} {'same' if self.top_same else 'changed'}")
        return text + (f" ({self.note})" if self.note else "")


def compare(recorded: Explanation, new: Explanation) -> SongResult:
    """The largest |weight or intercept difference| over the labels both explain, and whether
    the predicted label and its top features agree."""
    names_rec = [recorded.features[c].name for c in recorded.columns]
    names_new = [new.features[c].name for c in new.columns]
    if names_rec != names_new:
        return SongResult(recorded.song_id, math.inf, False,
                          f"features differ: {len(names_rec)} recorded, {len(names_new)} now")
    notes = []
    if set(recorded.fits) != set(new.fits):
        notes.append(f"labels differ: {sorted(recorded.fits)} recorded, {sorted(new.fits)} now")
    worst = 0.0
    for label in set(recorded.fits) & set(new.fits):
        a, b = recorded.fits[label], new.fits[label]
        worst = max([worst, abs(float(a.intercept) - float(b.intercept)),
                     *(abs(float(x) - float(y)) for x, y in zip(a.weights, b.weights,
                                                                strict=True))])
    top_rec = [n for n, _ in recorded.top_features(recorded.predicted_label, k=TOP_K)]
    top_new = [n for n, _ in new.top_features(new.predicted_label, k=TOP_K)]
    same = recorded.predicted_label == new.predicted_label and top_rec == top_new
    return SongResult(recorded.song_id, worst, same, "; ".join(notes))


def _override_value(value) -> str:
    """A config value in Hydra's override grammar."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_override_value(v)}" for k, v in value.items()) + "}"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _leaves(d: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_leaves(v, key + "."))
        else:
            out[key] = v
    return out


#: parts of a config that do not change an explanation (and are set by reproduce itself)
_NOT_COMPARED = ("tracking.", "workflow.", "hydra.", "results_root")


def config_pins(recorded: dict, now: dict) -> tuple[list[str], list[str]]:
    """Overrides that pin today's composed config back to the recorded one, and one line per
    difference that no override can pin (a key that no longer exists)."""
    old = {k: v for k, v in _leaves(recorded).items() if not k.startswith(_NOT_COMPARED)}
    new = {k: v for k, v in _leaves(now).items() if not k.startswith(_NOT_COMPARED)}
    pins, lines = [], []
    for key in sorted(set(old) | set(new)):
        if key not in new:
            pins.append(f"+{key}={_override_value(old[key])}")
        elif key not in old:
            lines.append(f"config {key}: not recorded (now {new[key]!r})")
        elif old[key] != new[key]:
            pins.append(f"{key}={_override_value(old[key])}")
    return pins, lines


class _Recorded:
    """What one MLflow run recorded, read (and downloaded) lazily from the store."""

    def __init__(self, client, run, scratch: Path):
        self.client, self.run, self.run_id = client, run, run.info.run_id
        self.scratch = scratch / self.run_id
        self.point_id = run.data.tags.get("musiclime.point_id")

    def file(self, artifact: str, required: bool = True) -> Path | None:
        try:
            return Path(self.client.download_artifacts(self.run_id, artifact,
                                                       str(self.scratch)))
        except Exception as exc:  # noqa: BLE001 (MlflowException, OSError: it is not there)
            if required:
                raise MusicLimeError(
                    f"run {self.run_id} has no {artifact} artifact: it was not logged by this "
                    "version of musiclime run (rerun its configuration to record it)") from exc
            return None

    def json(self, artifact: str):
        return json.loads(self.file(artifact).read_text(encoding="utf-8"))

    def config(self) -> dict:
        from omegaconf import OmegaConf

        return OmegaConf.to_container(OmegaConf.load(self.file("config/config.yaml")),
                                      resolve=False)

    def explanation(self, song_id: str) -> Explanation | None:
        path = self.file(f"songs/{song_id}/explanation.json", required=False)
        return Explanation.load(path) if path else None


def _runs_to_check(client, run_id: str, uri: str) -> list:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise MusicLimeError(f"no run {run_id} in {uri}; pass the results root whose "
                             "mlflow.db holds it (--from) or its store (--uri)") from exc
    if run.data.tags.get("musiclime.point_id"):
        return [run]
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{run_id}'",
        max_results=5000, order_by=["attributes.start_time ASC"])
    children = [c for c in children if c.data.tags.get("musiclime.point_id")]
    if not children:
        raise MusicLimeError(f"run {run_id} is neither a musiclime configuration run nor the "
                             "parent of one: nothing to reproduce")
    return children


def _inputs_changed(rec: _Recorded, songs: list[dict], expl: dict) -> bool:
    """Print what differs in the environment and the songs' files; whether a song changed."""
    env = rec.json("environment/environment.json")
    devices = {str(e.params.get("device", "cpu")) for e in expl.values() if e}
    diffs = environment_differences(env, environment_record(devices))
    for line in diffs:
        print(f"  environment {line}")
    if not diffs:
        print(f"  environment: the same (lock {str(env.get('lock_hash'))[:12]})")
    inputs = dataset_differences(songs)
    for line in inputs:
        print(f"  dataset {line}")
    if not inputs:
        print(f"  dataset: the same ({len(songs)} song(s), every file's sha256 as recorded)")
    return bool(inputs)


def _rerun_overrides(rec: _Recorded, out_root: Path) -> tuple[list[str], bool]:
    """Today's overrides for the recorded point (a default that changed since is pinned back
    to the recorded value); whether they compose to the recorded point id."""
    from .config import compose_config, point_config, point_id_of

    base = [o for o in rec.json("config/overrides.json")["overrides"]
            if not o.lstrip("+~").startswith(("results_root=", "tracking."))]
    fixed = [f"results_root={out_root}", "tracking.enabled=false"]
    pins, unpinnable = config_pins(rec.config(), point_config(compose_config(base + fixed)))
    for line in unpinnable:
        print(f"  {line}")
    for pin in pins:
        print(f"  config default changed since the run: pinned {pin}")
    overrides = base + pins + fixed
    new_id = point_id_of(point_config(compose_config(overrides)))
    if new_id != rec.point_id:
        print(f"  config: composes to point {new_id}, not the recorded {rec.point_id}")
    return overrides, new_id == rec.point_id


def _rerun_and_compare(rec: _Recorded, overrides: list[str], songs: list[str], expl: dict,
                       cores: int) -> tuple[int, list[SongResult]]:
    """Rerun the point with ``musiclime run``; compare each song's explanation with the
    recorded one."""
    from .tracking.log import explanation_files
    from .workflow.plan import plan_from_overrides
    from .workflow.runner import run_workflow

    rc = run_workflow(overrides, cores=cores)
    plan, _ = plan_from_overrides(overrides)
    files = explanation_files(plan, next(iter(plan.points.values()))) if rc == 0 else {}
    results = []
    for sid in songs:
        old = expl.get(sid) or rec.explanation(sid)
        path = Path(plan.results_root) / files[sid] if sid in files else None
        if old is None:
            results.append(SongResult(sid, math.inf, False, "no recorded explanation"))
        elif path is None or not path.is_file():
            results.append(SongResult(sid, math.inf, False, "the rerun did not explain it "
                                      "(see the run's summary above)"))
        else:
            results.append(compare(old, Explanation.load(path)))
    return rc, results


def reproduce(run_id: str, uri: str, out_root: str | Path, atol: float = 0.0,
              cores: int = 2) -> int:
    """Rerun ``run_id`` (see the module docstring) into ``out_root``; print what differs and
    the per-song comparison; return 0 when everything matches, 1 otherwise."""
    import os

    from mlflow.tracking import MlflowClient

    # a handful of small files: no progress bar per download
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = MlflowClient(tracking_uri=uri)
    runs = _runs_to_check(client, run_id, uri)
    out_root = Path(out_root).resolve()
    ok = True
    with tempfile.TemporaryDirectory(prefix="musiclime-reproduce-") as scratch:
        for run in runs:
            rec = _Recorded(client, run, Path(scratch))
            print(f"run {rec.run_id} ({run.info.run_name}, point {rec.point_id}):")
            recorded_songs = rec.json("dataset/songs.json")
            songs = sorted(r["song_id"] for r in recorded_songs)
            expl = {sid: rec.explanation(sid) for sid in songs}
            changed = _inputs_changed(rec, recorded_songs, expl)
            overrides, same_point = _rerun_overrides(rec, out_root)
            t0 = time.time()
            rc, results = _rerun_and_compare(rec, overrides, songs, expl, cores)
            print(f"  rerun into {out_root} ({time.time() - t0:.0f} s):")
            for r in results:
                print(r.line(atol))
            ok = (ok and same_point and not changed and rc == 0
                  and all(r.matches(atol) for r in results))
    verdict = "reproduced" if ok else "NOT reproduced"
    print(f"{verdict}: {run_id} (atol={atol:g}); rerun in {out_root}")
    return 0 if ok else 1
