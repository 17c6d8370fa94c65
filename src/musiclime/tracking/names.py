"""Run names: short, distinct names for the configurations of a sweep (MLflow's run names,
the console's rows, the results pages' legends), from the settings whose values differ."""

from __future__ import annotations

from ..io import layout

#: short names of config keys in run names; a key not listed is named by its last part
SHORT_NAMES = {"explainer.kernel_width": "kw", "explainer.num_samples": "n",
               "explainer.modality": "", "explainer.distance_scale": "ds",
               "explainer.seed": "seed", "explainer.lyrics_unit": "unit",
               "explainer.temporal_segments": "seg", "separator": "sep", "model": "model",
               "dataset": "data", "explainer.residual": "res", "explainer.labels": "lab",
               "explainer.sampler": "", "explainer.estimator": "", "explainer.target": "",
               "explainer.auto_target": "J", "explainer.auto_budget": "budget"}
#: settings every run name shows, swept or not (the MusicLIME paper's axes)
HEADLINE = ("explainer.kernel_width", "explainer.num_samples", "explainer.modality")


def lookup(config: dict, key: str):
    """The value of a dotted key in a nested config (a group's ``name``); None if absent."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node.get("name") if isinstance(node, dict) else node


def flatten_keys(d: dict, prefix: str = "") -> list[str]:
    """Dotted keys of a nested config; a group with a ``name`` also counts as one key."""
    out = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if "name" in v:
                out.append(key)
            out += flatten_keys(v, key + ".")
        else:
            out.append(key)
    return out


def setting(key: str, value) -> str:
    """``kw=0.1``; a setting whose short name is empty shows only its value (``both``)."""
    short = SHORT_NAMES.get(key, key.rpartition(".")[2])
    return f"{short}={value}" if short else str(value)


def run_names(configs: dict[str, dict], limit: int = 40) -> dict[str, tuple[str, dict]]:
    """point id -> ``(name, axes)`` for the resolved configs of a sweep: the name shows the
    swept settings (whose values differ between points) and the headline ones, ``kw=0.1
    n=1000 both``, in at most ``limit`` characters and distinct; ``axes``: swept key -> value.
    """
    keys = sorted({k for c in configs.values() for k in flatten_keys(c)})
    swept = [k for k in keys if len({str(lookup(c, k)) for c in configs.values()}) > 1
             and not k.startswith(("results_root", "hydra", "workflow", "tracking"))]
    shown = list(HEADLINE) + [k for k in swept if k not in HEADLINE]
    names = {}
    for pid, c in configs.items():
        name = " ".join(setting(k, layout.fmt(lookup(c, k))) for k in shown)
        if len(name) > limit:
            name = name[: limit - 9].rstrip() + " " + pid[2:10]
        names[pid] = name
    if len(set(names.values())) < len(names):  # distinct, whatever the truncation did
        names = {pid: f"{n[: limit - 9].rstrip()} {pid[2:10]}" for pid, n in names.items()}
    return {pid: (names[pid], {k: lookup(c, k) for k in swept}) for pid, c in configs.items()}


def sweep_name(axes_per_point: list[dict], single: str, limit: int = 40) -> str:
    """A sweep's (parent run's) name from its points' axes: what it varies, ``sweep
    kw=0.1,1 n=500,1000``; ``single``: the name of a configuration that is not a sweep."""
    axes: dict[str, list[str]] = {}
    for point_axes in axes_per_point:
        for k, v in point_axes.items():
            if layout.fmt(v) not in axes.setdefault(k, []):
                axes[k].append(layout.fmt(v))
    if not axes:
        return single if len(axes_per_point) == 1 else "sweep"
    name = "sweep " + " ".join(setting(k, ",".join(values)) for k, values in axes.items())
    return name if len(name) <= limit else name[: limit - 3] + "..."
