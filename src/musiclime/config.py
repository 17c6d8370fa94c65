"""Hydra composition, validation and object building.

The config tree lives in the repo's ``config/`` (or ``$MUSICLIME_CONFIG_DIR``). Composition
always uses ``version_base="1.3"`` through Hydra's compose API, so Hydra never changes the working
directory or creates timestamped output folders: every result goes under ``results_root``.

The ``explainer`` and ``metrics`` groups are Hydra structured configs: their ``default.yaml``
only says ``defaults: [schema, _self_]``, and the schema nodes (:func:`register_configs`) are the
dataclasses :class:`~musiclime.core.explainer.ExplainerConfig` and
:class:`~musiclime.metrics.evaluate.MetricsConfig`, whose fields hold every key, type and
default. Hydra rejects an unknown key or a value of the wrong type while composing; the
dataclasses' own checks run in :func:`validate`.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .core.params import ExplainerConfig
from .errors import ConfigError

#: Top-level groups and keys a config may hold; anything else is a typo.
ROOT_KEYS = {"dataset", "separator", "model", "explainer", "metrics", "tracking", "sweep",
             "results_root", "working_sample_rate", "hydra", "workflow"}
#: (group, name) of the structured-config schema nodes in Hydra's ConfigStore
EXPLAINER_SCHEMA = ("explainer", "schema")
METRICS_SCHEMA = ("metrics", "schema")


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def config_dir() -> Path:
    env = os.environ.get("MUSICLIME_CONFIG_DIR")
    path = Path(env) if env else repo_root() / "config"
    if not (path / "config.yaml").is_file():
        raise ConfigError(
            f"no musiclime config tree at {path} (config.yaml missing). Run from a checkout of "
            "the musiclime repo, or set MUSICLIME_CONFIG_DIR to its config/ folder."
        )
    return path.resolve()


#: extra config folders (``musiclime --config-dir DIR``), ``os.pathsep``-separated
USER_CONFIG_ENV = "MUSICLIME_USER_CONFIG"


def add_user_config_dir(path: str | os.PathLike) -> Path:
    """Add a user's config folder: its group files (``DIR/model/my_model.yaml``) become
    choices (``model=my_model``), and ``DIR`` joins the Python path so the modules its
    ``_target_`` entries name import, in this process and in every workflow job (both read
    the environment)."""
    folder = Path(path).expanduser().resolve()
    if not folder.is_dir():
        raise ConfigError(f"--config-dir {path}: {folder} is not a folder (relative paths are "
                          "taken from the current directory)")
    dirs = user_config_dirs()
    if folder not in dirs:
        os.environ[USER_CONFIG_ENV] = os.pathsep.join(str(d) for d in [*dirs, folder])
    python_path = os.environ.get("PYTHONPATH", "")
    if str(folder) not in python_path.split(os.pathsep):
        os.environ["PYTHONPATH"] = os.pathsep.join(x for x in (str(folder), python_path) if x)
    import sys

    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
    return folder


def user_config_dirs() -> list[Path]:
    return [Path(d) for d in os.environ.get(USER_CONFIG_ENV, "").split(os.pathsep) if d]


def register_configs() -> None:
    """Store the schema nodes ``explainer/schema`` (:class:`ExplainerConfig`) and
    ``metrics/schema`` (:class:`~musiclime.metrics.evaluate.MetricsConfig`) in Hydra's
    ConfigStore, where the groups' ``default.yaml`` find them (idempotent)."""
    from hydra.core.config_store import ConfigStore

    from .metrics.evaluate import MetricsConfig

    store = ConfigStore.instance()
    store.store(group=EXPLAINER_SCHEMA[0], name=EXPLAINER_SCHEMA[1], node=ExplainerConfig)
    store.store(group=METRICS_SCHEMA[0], name=METRICS_SCHEMA[1], node=MetricsConfig)


def compose_config(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose the config with Hydra and validate it (raises :class:`ConfigError`)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    overrides = list(overrides or [])
    extra = user_config_dirs()
    if extra:
        import sys

        for d in extra:  # `_target_` modules in the user's folder import in this process too
            if str(d) not in sys.path:
                sys.path.insert(0, str(d))
        overrides = [f"hydra.searchpath=[{','.join(f'file://{d}' for d in extra)}]",
                     *overrides]
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
    except (HydraException, OmegaConfBaseException) as exc:
        # Hydra's message names the override; its cause says what is wrong with it (the schema's
        # "Key 'foo' not in 'MetricsConfig'", "Value 'x' ... could not be converted to Float")
        cause = str(exc.__cause__).splitlines()[0] if exc.__cause__ is not None else ""
        raise ConfigError(f"invalid configuration override(s) {overrides}: {exc}"
                          + (f" ({cause})" if cause else "") + override_hint(overrides)
                          ) from exc
    finally:
        GlobalHydra.instance().clear()
    validate(cfg)
    return cfg


def _parse_override(line: str):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create().parse_overrides([line])[0]


def hydra_value(text: str) -> str:
    """``text`` written as a Hydra override value that Hydra reads back as exactly ``text``:
    as it is when it can be, else quoted (Hydra's grammar stops at ``( ) [ ] , = ' "``, and
    at letters outside ASCII, unless the value is quoted)."""
    from hydra.errors import HydraException

    candidates = [text] + [q + text.replace(q, "\\" + q) + q for q in ('"', "'")]
    for value in candidates:
        try:
            if _parse_override(f"k={value}").value() == text:
                return value
        except HydraException:
            continue
    return text


def override_hint(overrides: list[str]) -> str:
    """For the first override Hydra cannot parse (a path with parentheses, quotes or non-ASCII
    letters): the same override, quoted for Hydra and for the shell; empty when none."""
    from hydra.errors import HydraException

    for line in overrides:
        try:
            _parse_override(line)
        except HydraException:
            key, sep, value = line.partition("=")
            if not sep or not value:
                continue
            fixed = f"{key}={hydra_value(value)}"
            if fixed != line:
                return (f"; Hydra reads {line!r} only with its value quoted: write "
                        f"{shell_quote(fixed)} on the command line")
    return ""


def shell_quote(text: str) -> str:
    """``text`` as one shell word: :func:`shlex.quote`, but in double quotes when it holds a
    single quote (``"k=\\"it's\\""`` reads better than ``'k="it'"'"'s"'``)."""
    import shlex

    if "'" in text:
        return '"' + "".join("\\" + c if c in '\\"$`' else c for c in text) + '"'
    return shlex.quote(text)


def explainer_config(cfg: DictConfig) -> ExplainerConfig:
    """The ``explainer`` group as a validated :class:`ExplainerConfig`."""
    fields = ExplainerConfig.__dataclass_fields__
    # the schema rejects unknown keys, except those added with Hydra's `+key=value`
    unknown = set(cfg.explainer.keys()) - set(fields)
    if unknown:
        raise ConfigError(f"explainer: unknown key(s) {', '.join(sorted(unknown))}. "
                          f"Valid keys: {', '.join(fields)}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(ExplainerConfig), cfg.explainer)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"explainer: {exc.msg if hasattr(exc, 'msg') else exc}".split("\n")[0]
                          + f". Valid keys: {', '.join(fields)}"
                          ) from exc
    data = OmegaConf.to_container(merged, resolve=True)
    return ExplainerConfig(**data)


def metric_settings(cfg: DictConfig):
    """The ``metrics`` group as validated :class:`musiclime.metrics.MetricSettings` (or None
    when the evaluate stage is disabled)."""
    from .metrics import MetricSettings

    node = OmegaConf.to_container(cfg.get("metrics") or {}, resolve=True)
    if not node.pop("enabled", True):
        return None
    unknown = set(node) - set(MetricSettings.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"metrics: unknown key(s) {', '.join(sorted(unknown))}. Valid keys: "
                          f"enabled, {', '.join(MetricSettings.__dataclass_fields__)}")
    try:
        return MetricSettings(**node)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metrics: {exc}") from exc


def validate(cfg: DictConfig) -> None:
    unknown = set(cfg.keys()) - ROOT_KEYS
    if unknown:
        raise ConfigError(f"unknown top-level config key(s): {', '.join(sorted(unknown))}; "
                          f"known keys are {', '.join(sorted(ROOT_KEYS))}")
    explainer_config(cfg)
    if "metrics" in cfg:
        metric_settings(cfg)
    for group in ("separator", "model", "dataset"):
        if "name" not in cfg[group]:
            raise ConfigError(f"config group {group} needs a 'name'")
    rate = cfg.get("working_sample_rate")
    if rate is not None and (not isinstance(rate, int) or rate <= 0):
        raise ConfigError(f"working_sample_rate={rate!r}: must be null or a positive integer")


def to_container(node) -> Any:
    """A config node as plain, resolved data (anything else as it is)."""
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def point_config(cfg: DictConfig, explainer: ExplainerConfig | None = None) -> dict:
    """A point's resolved config as it is recorded (params, frozen config): one spelling per
    path, so runs compare without false differences; where the results live is not part of a
    configuration (a results folder can move); the auto_* settings only for num_samples=auto."""
    from .core.explainer import AUTO_KEYS

    explainer = explainer or explainer_config(cfg)
    resolved = to_container(cfg)
    resolved.pop("results_root", None)
    if not explainer.is_auto:
        for key in AUTO_KEYS:
            resolved["explainer"].pop(key, None)
    resolved["dataset"]["manifest"] = str(Path(resolved["dataset"]["manifest"])
                                          .expanduser().resolve())
    return resolved


def point_id_of(resolved: dict) -> str:
    """A point's id: the hash of what its results depend on (not tracking or workflow knobs)."""
    from .models.identity import short_hash

    return "p-" + short_hash({k: v for k, v in resolved.items()
                              if k not in ("tracking", "workflow", "hydra")})


def _build(node: DictConfig, what: str) -> Any:
    from hydra.utils import instantiate
    from omegaconf.errors import MissingMandatoryValue

    try:
        params = OmegaConf.to_container(node, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as exc:
        key = getattr(exc, "full_key", "") or str(exc).split("\n")[0]
        raise ConfigError(f"{what}: {key} has no value (??? in its config file); set it on the "
                          f"command line, e.g. {key}=...") from exc
    params.pop("name", None)
    try:
        return instantiate(params, _convert_="all")
    except Exception as exc:
        # Hydra wraps the real error; surface the underlying cause, which names the problem
        cause = exc.__cause__ or exc
        if isinstance(cause, Exception) and cause is not exc:
            raise cause from exc
        raise ConfigError(f"cannot build {what} from {params}: {exc}") from exc


def build_classifier(cfg: DictConfig):
    return _build(cfg.model, "model")


def build_separator(cfg: DictConfig):
    return _build(cfg.separator, "separator")


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


# --- overrides: one spelling per configuration, sweeps expanded into points ---------------
#: config keys whose values are always paths (a relative one is taken from the working folder)
PATH_KEYS = ("results_root", "dataset.manifest", "model.path", "model.head")


def normalize_overrides(overrides: list[str]) -> list[str]:
    """One spelling per configuration, so that equivalent commands plan the same points, run
    ids and Snakemake params: overrides sorted by key (Hydra applies them by key, not by
    position; repeated keys keep their order), and relative paths made absolute. A value is a
    path when its key is in :data:`PATH_KEYS`, or when it names a file or folder that exists
    and contains a ``/`` (``separator.model=models/umx``, not ``separator.model=umxl``).
    Sweeps (``a,b``), lists, interpolations and deletions are kept as written."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType, ValueType
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    keyed = []
    for line in overrides:
        try:
            o = parser.parse_overrides([line])[0]
        except HydraException:  # composing reports it, with how to quote it
            keyed.append((line.partition("=")[0].lstrip("+~"), line))
            continue
        key = o.key_or_group + (f"@{o.package}" if o.package else "")
        value = o.value() if o.value_type == ValueType.ELEMENT else None
        if (o.type != OverrideType.DEL and isinstance(value, str) and value
                and "${" not in value and _is_path(o.key_or_group, value)):
            path = str(Path(value).expanduser().absolute())
            if path != value:
                line = f"{o.get_key_element()}={hydra_value(path)}"
        keyed.append((key, line))
    return [line for _, line in sorted(keyed, key=lambda kv: kv[0])]


def _is_path(key: str, value: str) -> bool:
    if key in PATH_KEYS:
        return "://" not in value
    return "/" in value and "://" not in value and Path(value).expanduser().exists()


def expand_overrides(overrides: list[str], sweep_preset: dict | None = None) -> list[list[str]]:
    """Hydra multirun semantics: the cartesian product of every ``key=a,b,c`` sweep override.

    ``sweep_preset`` (``workflow.sweep`` of a ``sweep=`` preset) adds ``key: "a,b,c"`` axes;
    an axis given on the command line wins over the preset's axis of the same key.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    parsed = parser.parse_overrides(list(overrides))
    axes: dict[str, list[str]] = {}
    for key, values in (sweep_preset or {}).items():
        if isinstance(values, (list, tuple)):
            values = ",".join(str(v) for v in values)
        for o in parser.parse_overrides([f"{key}={values}"]):
            axes[o.get_key_element()] = _axis(o)
    for o in parsed:
        axes[o.get_key_element()] = _axis(o)
    keys = list(axes)
    return [[f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
            for combo in itertools.product(*(axes[k] for k in keys))]


def _axis(o) -> list[str]:
    if o.is_sweep_override():
        return list(o.sweep_string_iterator())
    return [o.get_value_element_as_str()]


def is_sweep(override: str) -> bool:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return any(o.is_sweep_override()
               for o in OverridesParser.create().parse_overrides([override]))
