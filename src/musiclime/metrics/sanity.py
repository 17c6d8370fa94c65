"""Sanity check: does the explanation change when the classifier forgets what it learnt?

Source: Adebayo, Gilmer, Muelly, Goodfellow, Hardt & Kim, "Sanity Checks for Saliency Maps"
(NeurIPS 2018), Sec. 3.1, *cascading model-parameter randomisation*: re-initialise the
network's layers one after another from the output down, explain the same input after each
step and compare with the original explanation by rank correlation. An explanation that
depends on what the model learnt falls towards 0; one that survives full randomisation
explains the input (or the architecture), not the model.

With the classifier's layers ``l_1 .. l_L`` ordered from the output down, ``f_d`` the classifier
with ``l_1 .. l_d`` re-initialised (cumulatively; ``f_0 = f``), the explained label ``y``, the
explanation's own masks ``z_1 .. z_n`` and surrogate settings, and ``w_d`` the weights of the
explanation fitted to ``f_d(z_1) .. f_d(z_n)`` (so ``w_0`` is the original explanation):

- ``spearman[d]`` = ``spearmanr(w_d, w_0)`` (signed weights),
- ``spearman_abs[d]`` = ``spearmanr(|w_d|, |w_0|)`` (Adebayo et al. report both: a map can keep
  its magnitudes' ranking while signs flip),
- ``jaccard[d]`` = ``|T_d & T_0| / |T_d | T_0|`` with ``T`` the top-5 features by signed weight
  (the ranking of :func:`~musiclime.metrics.predictor.ranking`).

Step 0 is the original explanation (all three are 1 by definition; nothing is predicted for
it). NaN where a weight vector is constant (spearmanr is undefined). **Lower is better** after
randomisation: a method that passes has ``spearman_final`` (``d = L``) near 0.

Layers (:func:`randomisable_layers`): the classifier's ``torch.nn.Module`` is the classifier
itself if it is a Module, else its first attribute among :data:`MODULE_ATTRIBUTES` that is one
(the demo classifier's ``net``: the batch-norm-folded network it predicts with;
``model=hf_fusion``'s ``net``: its audio encoder, text encoder and head as one ``ModuleDict``;
``model=hf_audio`` / ``hf_text``: the Hugging Face ``model``). A layer is a
module that holds parameters of its own (``Linear``, ``Conv``, ``BatchNorm``, ``Embedding``, or a
custom module's direct ``nn.Parameter`` such as the demo lyrics encoder's embedding table),
taken in reverse registration order (``named_modules``). For a network that registers its
parts in forward order this is output first; parallel branches come in reverse registration
order (the demo net: ``head``, then the lyrics branch, then the audio branch).

Re-initialisation (:func:`reinitialise_layer`), with a private seed per layer derived from
``(seed, layer index)`` (so the fully randomised network is the same however the cascade is
grouped) and the global torch random state left as it was: a leaf module's own
``reset_parameters()`` (a batch norm's also resets its running statistics), run on a CPU copy so
the values do not depend on the device; other parameters are drawn from ``N(0, s^2)`` with ``s``
the trained parameter's standard deviation (1 for a constant or a scalar), keeping the scale
and destroying the learnt structure. The cascade works on a deep copy of the classifier: the
classifier passed in is never touched.

Cost: ``num_samples`` classifier rows per cascade step after step 0. ``layers`` bounds it:
``0`` steps through every layer (``L`` steps); ``N > 0`` takes ``N`` evenly spaced cumulative
steps, depths ``ceil(i * L / N)`` for ``i = 1 .. N``, always ending with every layer randomised
(``N = 1``: only the fully randomised network).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import re
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import spearmanr

from ..errors import ConfigError
from .stability import jaccard, top_k_set

if TYPE_CHECKING:
    from torch import nn

    from ..core.explainer import ExplainerConfig, Song
    from ..core.explanation import Explanation

log = logging.getLogger(__name__)

#: where a classifier that is not itself a Module keeps its network, in the order looked up
MODULE_ATTRIBUTES = ("net", "model", "module")
#: k of the top-k Jaccard overlap with the original explanation
TOP_K = 5


# --- layers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layer:
    """One randomisable layer: a module of the network that holds parameters of its own."""

    path: str  # the module's path in the network (``named_modules``): "head.3"
    kind: str  # its class name: "Linear"
    params: tuple[str, ...]  # its own parameters' names: ("weight", "bias")
    leaf: bool  # no child modules

    @property
    def name(self) -> str:
        """``head.3``; a module with children as well is named by its own parameters too
        (``lyrics.embedding``), since its children are layers of their own."""
        path = self.path or "(root)"
        return path if self.leaf else f"{path}.{'+'.join(self.params)}"


def torch_module(classifier) -> nn.Module:
    """The classifier's network (module docstring); ConfigError when it has none."""
    from torch import nn

    if isinstance(classifier, nn.Module):
        return classifier
    for attr in MODULE_ATTRIBUTES:
        module = getattr(classifier, attr, None)
        if isinstance(module, nn.Module):
            return module
    raise ConfigError(
        f"metrics.sanity=true needs a torch classifier: {type(classifier).__name__} neither is "
        f"a torch.nn.Module nor holds one as .{', .'.join(MODULE_ATTRIBUTES)}, so there are no "
        "parameters to randomise; set metrics.sanity=false")


def randomisable_layers(classifier) -> list[Layer]:
    """The classifier's layers from the output down (module docstring)."""
    module = torch_module(classifier)
    layers = []
    for path, sub in module.named_modules():
        own = tuple(name for name, _ in sub.named_parameters(recurse=False))
        if own:
            leaf = next(sub.children(), None) is None
            layers.append(Layer(path=path, kind=type(sub).__name__, params=own, leaf=leaf))
    if not layers:
        raise ConfigError(f"metrics.sanity=true: the network of {type(classifier).__name__} "
                          "has no parameters to randomise; set metrics.sanity=false")
    return layers[::-1]


def cascade_depths(n_layers: int, steps: int = 0) -> list[int]:
    """Layers randomised at each cascade step, ``0`` (the original) first, ``n_layers`` last:
    every depth for ``steps <= 0`` or ``steps >= n_layers``, else ``ceil(i * n_layers /
    steps)`` for ``i = 1 .. steps``."""
    n, steps = int(n_layers), int(steps)
    if steps <= 0 or steps >= n:
        return list(range(n + 1))
    return [0] + [-(-i * n // steps) for i in range(1, steps + 1)]


def layer_seed(seed: int, index: int) -> int:
    """The private seed of the ``index``-th layer (0 = the output layer)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def reinitialise_layer(module: nn.Module, seed: int) -> None:
    """Re-initialise ``module``'s own parameters in place (module docstring)."""
    import torch

    leaf = next(module.children(), None) is None
    params = dict(module.named_parameters(recurse=False))
    fresh_params: dict[str, torch.Tensor] = {}
    fresh_buffers: dict[str, torch.Tensor] = {}
    with torch.random.fork_rng(devices=[]):  # CPU only: the values do not depend on the device
        torch.manual_seed(int(seed))
        if leaf and callable(getattr(module, "reset_parameters", None)):
            fresh = copy.deepcopy(module).cpu()
            fresh.reset_parameters()
            fresh_params = dict(fresh.named_parameters(recurse=False))
            fresh_buffers = dict(fresh.named_buffers(recurse=False))
        else:
            for name, p in params.items():
                std = float(p.detach().double().std()) if p.numel() > 1 else 0.0
                std = std if np.isfinite(std) and std > 0 else 1.0
                fresh_params[name] = torch.randn(p.shape, dtype=torch.float32) * std
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(fresh_params[name].to(device=p.device, dtype=p.dtype))
        for name, b in module.named_buffers(recurse=False):
            if name in fresh_buffers:
                b.copy_(fresh_buffers[name].to(device=b.device, dtype=b.dtype))
    reset_stats = getattr(module, "reset_running_stats", None)
    if not fresh_buffers and callable(reset_stats):
        reset_stats()


def randomised_cascade(classifier, depths: Sequence[int],
                       seed: int = 0) -> Iterator[tuple[int, object]]:
    """``(depth, classifier)`` for each depth (ascending): a deep copy of ``classifier`` whose
    first ``depth`` layers (:func:`randomisable_layers`) are re-initialised. One copy is
    randomised further at each step, so later steps reuse the earlier ones' work; the
    classifier passed in is never touched."""
    clone = copy.deepcopy(classifier)
    layers = randomisable_layers(clone)
    modules = dict(torch_module(clone).named_modules())
    done = 0
    for depth in sorted(int(d) for d in depths):
        if not 0 <= depth <= len(layers):
            raise ValueError(f"cascade depth {depth} is outside 0..{len(layers)}")
        for index in range(done, depth):
            reinitialise_layer(modules[layers[index].path], layer_seed(seed, index))
        done = max(done, depth)
        yield depth, clone


# --- the metric ---------------------------------------------------------------------------------
@dataclass
class SanityResult:
    """The cascade of one explanation: one entry per step, step 0 the original."""

    layers: list[str]  # every randomisable layer, output first
    depths: list[int]  # layers randomised at each step (0, ..., len(layers))
    spearman: list[float] = field(default_factory=list)
    spearman_abs: list[float] = field(default_factory=list)
    jaccard: list[float] = field(default_factory=list)
    label: int = 0
    classifier_rows: int = 0  # mask rows predicted (one forward pass each)

    @property
    def steps(self) -> list[str]:
        """Each step's name: ``original``, then the deepest layer randomised so far."""
        return ["original" if d == 0 else self.layers[d - 1] for d in self.depths]

    def as_dict(self) -> dict[str, float]:
        """``spearman_depth{d}``, ``spearman_abs_depth{d}``, ``jaccard_top5_depth{d}`` per step,
        ``spearman_final``, ``spearman_abs_final`` (every layer randomised) and
        ``layer_count`` (the evaluate stage prefixes them with ``sanity_``)."""
        out: dict[str, float] = {}
        for d, rho, rho_abs, jac in zip(self.depths, self.spearman, self.spearman_abs,
                                        self.jaccard, strict=True):
            out[f"spearman_depth{d}"] = rho
            out[f"spearman_abs_depth{d}"] = rho_abs
            out[f"jaccard_top{TOP_K}_depth{d}"] = jac
        out["spearman_final"] = self.spearman[-1]
        out["spearman_abs_final"] = self.spearman_abs[-1]
        out["layer_count"] = float(len(self.layers))
        return {k: float(v) for k, v in out.items()}


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two weight vectors; NaN when either is constant or too short."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size < 2:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: spearmanr warns and returns NaN
        return float(spearmanr(a, b).statistic)


def compare_weights(weights: np.ndarray, original: np.ndarray) -> tuple[float, float, float]:
    """``(spearman, spearman_abs, jaccard top-5)`` of ``weights`` against ``original``."""
    w, w0 = np.asarray(weights, dtype=np.float64), np.asarray(original, dtype=np.float64)
    k = min(TOP_K, w0.size)
    return (rank_correlation(w, w0), rank_correlation(np.abs(w), np.abs(w0)),
            jaccard(top_k_set(w, k), top_k_set(w0, k)))


class _DropThisThread(logging.Filter):
    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread != self.thread


@contextlib.contextmanager
def _quiet_fit_warnings():
    """Hush the explainer's warnings about this thread's refits: a randomised classifier is
    expected to be unsure, flat or deaf, and those warnings are about the user's song."""
    logger = logging.getLogger("musiclime.core.explainer")
    quiet = _DropThisThread()
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


def explain_with(classifier, exp: Explanation, song: Song,
                 config: ExplainerConfig) -> tuple[Explanation, int]:
    """``exp`` explained again with another classifier: the same masks (regenerated from the
    explanation's seed and sample count) and surrogate settings (``config``, e.g.
    :func:`~musiclime.metrics.evaluate.config_from_explanation`), predicted through
    :func:`~musiclime.core.explainer.predict_song`. Returns the explanation and the rows predicted."""
    from ..core.explainer import fit_explanation, make_masks, predict_song

    masks, layout = make_masks(exp.features, config)
    preds = predict_song(classifier, song, masks, layout, config, progress=False,
                         modality_game=False)
    with _quiet_fit_warnings():
        refit = fit_explanation(exp.song_id, exp.features, layout, masks, preds.probs,
                                exp.class_names, config)
    return refit, int(preds.unique_rows or masks.shape[0])


def sanity_cascade(exp: Explanation, song: Song, classifier,
                   config: ExplainerConfig | None = None, label: int | None = None,
                   layers: int = 0, seed: int = 0) -> SanityResult:
    """Cascading randomisation of ``classifier`` for one explanation (module docstring).

    Parameters
    ----------
    exp: the explanation to check (of ``song``, by ``classifier``).
    song: the factorized song (the explanation's segmentation and lyrics unit).
    classifier: the classifier that was explained; it must hold a torch module.
    config: explainer settings for the refits (default: those recorded in ``exp``); the
        surrogate settings, seed and sample count always come from ``exp``.
    label: the label compared (default: the explanation's predicted label).
    layers: ``0``: a step per layer; ``N > 0``: ``N`` evenly spaced cumulative steps.
    seed: seed of the re-initialisation.
    """
    from .rerun import check_song, config_from_explanation

    label = exp.predicted_label if label is None else int(label)
    if label not in exp.fits:
        raise ValueError(f"{exp.song_id}: the explanation has no surrogate for label {label}")
    check_song(exp, song)
    cfg = config_from_explanation(exp, config, label)
    names = [layer.name for layer in randomisable_layers(classifier)]
    depths = cascade_depths(len(names), layers)
    original = exp.fits[label].weights
    result = SanityResult(layers=names, depths=depths, label=label)
    result.spearman.append(1.0)
    result.spearman_abs.append(1.0)
    result.jaccard.append(1.0)
    t0 = time.perf_counter()
    for depth, randomised in randomised_cascade(classifier, depths[1:], seed=seed):
        refit, rows = explain_with(randomised, exp, song, cfg)
        rho, rho_abs, jac = compare_weights(refit.fits[label].weights, original)
        result.spearman.append(rho)
        result.spearman_abs.append(rho_abs)
        result.jaccard.append(jac)
        result.classifier_rows += rows
        log.info("%s: sanity cascade, %d/%d layers randomised (to %s): spearman %.3f, "
                 "|w| %.3f, top-%d Jaccard %.2f", exp.song_id, depth, len(names),
                 names[depth - 1], rho, rho_abs, TOP_K, jac)
    log.info("%s: sanity cascade of %d steps in %.1f s", exp.song_id, len(depths) - 1,
             time.perf_counter() - t0)
    return result


# --- the figure ---------------------------------------------------------------------------------
_DEPTH_KEY = re.compile(r"(?:sanity_)?(spearman|spearman_abs)_depth(\d+)")


def cascade_curves(item) -> tuple[dict[int, float], dict[int, float], list[str] | None]:
    """``({depth: rho}, {depth: rho_abs}, layer names or None)`` of a result or a metrics
    dict (the evaluate stage's ``sanity_*`` keys, or :meth:`SanityResult.as_dict`'s)."""
    if isinstance(item, SanityResult):
        return (dict(zip(item.depths, item.spearman, strict=True)),
                dict(zip(item.depths, item.spearman_abs, strict=True)), list(item.layers))
    if not isinstance(item, Mapping):
        raise TypeError(f"expected a SanityResult or a metrics dict, got {type(item).__name__}")
    signed: dict[int, float] = {}
    absolute: dict[int, float] = {}
    for key, value in item.items():
        m = _DEPTH_KEY.fullmatch(str(key))
        if m:
            (signed if m.group(1) == "spearman" else absolute)[int(m.group(2))] = float(value)
    if not signed:
        raise ValueError("no sanity_spearman_depth{k} keys: was metrics.sanity on?")
    return signed, absolute, None


def sanity_plot_path(metrics_path: str | os.PathLike) -> Path:
    """Where the evaluate stage writes a song's cascade figure: next to its metrics JSON
    (``<song>.json`` -> ``<song>.sanity.png``)."""
    return Path(metrics_path).with_suffix(".sanity.png")
