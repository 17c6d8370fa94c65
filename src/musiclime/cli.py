"""The ``musiclime`` command.

    musiclime explain AUDIO [--lyrics LYRICS.txt] [--stems DIR] [--out DIR] [overrides ...]
    musiclime run [-m] [--cores N] [overrides ...]
    musiclime track [-m] [overrides ...]     (after a tracking outage: records what is missing)
    musiclime report [-m] [--out report.html] [overrides ...]
    musiclime results [--results-root results] [--out docs/results/calls.md] [--calls-uri URI]
                      [--no-figures]     (tables and figures of a sweep, from MLflow)
    musiclime train-classifier --out DIR [overrides ...]   (a fusion head: model=hf_fusion)
    musiclime config [overrides ...]
    musiclime where PATH
    musiclime relocate RESULTS_ROOT          (after moving or copying a results folder)
    musiclime reproduce RUN_ID [--from RESULTS_ROOT | --uri URI] [--results-root DIR] [--atol X]

Overrides are Hydra's: ``explainer.num_samples=2000 separator=oracle model=demo``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import supervise
from .errors import InputError, MusicLimeError, describe_os_error, one_line

log = logging.getLogger("musiclime")


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_config(args) -> int:
    from .config import compose_config, to_yaml

    print(to_yaml(compose_config(args.overrides)))
    return 0


def cmd_explain(args) -> int:
    from .config import build_classifier, build_separator, compose_config, explainer_config, to_yaml
    from .io.fileio import atomic_path, ensure_writable_dir
    from .models.separation import OracleSeparator

    cfg = compose_config(args.overrides)
    econf = explainer_config(cfg)
    audio = Path(args.audio)
    song_id = args.song_id or audio.stem
    from .io.dataset import song_id_problem

    problem = song_id_problem(song_id)
    if problem:
        raise InputError(f"{problem}; pass --song-id with a plain name")
    out = Path(args.out) if args.out else Path(cfg.results_root) / "explain" / song_id
    # a folder that cannot be written fails now, not after the explanation is computed
    ensure_writable_dir(out, "--out" if args.out else "results_root")
    separator = build_separator(cfg)
    stems_dir = None
    if isinstance(separator, OracleSeparator):
        stems_dir = Path(args.stems) if args.stems else audio.with_suffix(".stems")
        if not stems_dir.is_dir():
            raise MusicLimeError(f"separator=oracle needs ground-truth stems: {stems_dir} is not "
                                 "a folder; pass --stems DIR (vocals.wav, drums.wav, ...)")
    classifier = build_classifier(cfg)
    from .report.explanation_files import explain_file

    # the log of this explanation (warnings, and the traceback of a failure) next to its files
    out.mkdir(parents=True, exist_ok=True)
    log_file = out / "explain.log"
    handler = logging.FileHandler(log_file, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        # a native crash writes the Python stack into explain.log (and main()'s supervising
        # parent, when there is one, names the signal and the place on the console)
        with supervise.watch(handler.stream, log_file):
            exp, files = explain_file(audio, args.lyrics, classifier, separator, econf, out,
                                      song_id=song_id, stems_dir=stems_dir,
                                      working_rate=cfg.working_sample_rate,
                                      progress=not args.quiet)
    except KeyboardInterrupt:
        handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0,
                                      "explaining %s: interrupted (Ctrl-C)", (audio,), None))
        raise
    except Exception as exc:
        # the traceback goes to explain.log only; the console gets main()'s one line
        handler.handle(log.makeRecord(log.name, logging.ERROR, __file__, 0,
                                      "explaining %s failed", (audio,), sys.exc_info()))
        if isinstance(exc, (MusicLimeError, FileNotFoundError)):
            raise type(exc)(f"{exc} (traceback in {log_file})") from exc
        if isinstance(exc, MemoryError):
            raise MusicLimeError(f"explaining {audio}: {one_line(exc)} "
                                 f"(traceback in {log_file})") from exc
        raise
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    with atomic_path(out / "config.yaml", ".yaml") as tmp:
        tmp.write_text(to_yaml(cfg))
    label = exp.predicted_label
    print(summary_line(exp, song_id))
    for warning in exp.fit_warnings:  # also logged above; the summary is what gets read
        print(f"  fit warning [{warning.code}]: {warning.message}")
    for name, w in exp.top_features(label, k=5):
        print(f"  {w:+.4f}  {name}")
    print(f"wrote {files.json}, {files.heatmap.name}, {files.lyrics.name}, {files.listen.name} "
          f"in {out}")
    return 0


def summary_line(exp, song_id: str) -> str:
    """``musiclime explain``'s line for the predicted label: the prediction, the fit's R^2
    in-sample and held-out side by side, and how many samples the kernel let count."""
    label = exp.predicted_label
    fit = exp.fits[label]
    quality = exp.fit_quality
    held = ""
    if quality is not None:
        held = f", {exp.heldout_phrase(label)}"
        if not exp.heldout_text(label).startswith("n/a"):  # an n/a says why in its own brackets
            held += f" ({quality.heldout_folds}-fold CV)"
    samples = (f", {quality.effective_samples:.1f} effective samples for "
               f"{quality.n_features} features" if quality is not None else "")
    return (f"{song_id}: predicted {exp.label_name(label)} (p={exp.prediction[label]:.3f}); "
            f"surrogate R^2={fit.score:.3f} in-sample{held}; kernel weights "
            f"{exp.kernel['weight_min']:.3f}..{exp.kernel['weight_max']:.3f}{samples}")


def cmd_run(args) -> int:
    from .workflow.runner import run_workflow

    return run_workflow(args.overrides, multirun=args.multirun, cores=args.cores,
                        dry_run=args.dry_run, extra=args.snakemake_args, profile=args.profile)


def cmd_train_classifier(args) -> int:
    from .config import compose_config
    from .models.head import TrainSettings
    from .training import train_classifier

    cfg = compose_config(args.overrides)
    settings = TrainSettings(hidden=args.hidden, dropout=args.dropout, epochs=args.epochs,
                             lr=args.lr, weight_decay=args.weight_decay, seed=args.seed)
    m = train_classifier(cfg, args.out, settings, val_fraction=args.val_fraction,
                         progress=not args.quiet)
    val = "n/a (no validation songs)" if m["val_accuracy"] is None else (
        f"{m['val_accuracy']:.3f} on {m['n_val']} songs (chance {m['chance_accuracy']:.3f}; "
        f"{m['split']} split)")
    print(f"head for model={cfg.model.get('name')}: train accuracy {m['train_accuracy']:.3f} on "
          f"{m['n_train']} songs, val accuracy {val}, best epoch {m['best_epoch']}")
    if m.get("val_confusion") is not None:
        names = m["class_names"]
        print("  val confusion (rows: true, columns: predicted " + ", ".join(names) + "):")
        for name, row in zip(names, m["val_confusion"], strict=True):
            print(f"    {name:>12}: " + " ".join(f"{v:4d}" for v in row))
    if m.get("tracking_error"):
        print(f"  MLflow: not logged ({m['tracking_error']})")
    elif m.get("mlflow_run_id"):
        print(f"  MLflow: run {m['mlflow_run_id']} in experiment musiclime-train")
    use = (f"; use it with model=hf_fusion model.head={args.out}"
           if cfg.model.get("name") == "hf_fusion" else "")
    print(f"wrote {Path(args.out) / 'config.json'}, head.pt, metrics.json{use}")
    return 0


def cmd_report(args) -> int:
    from .workflow.runner import report_workflow

    return report_workflow(args.overrides, multirun=args.multirun, out=args.out)


def cmd_results(args) -> int:
    from .report.results_table import write_report
    from .tracking.store import tracking_uri

    uri = args.uri or tracking_uri({}, args.results_root)
    # reading must not create: MLflow makes an empty store where a SQLite URI points
    _existing_store(uri, f"--uri {uri}" if args.uri else f"--results-root {args.results_root}")
    if args.calls_uri:
        _existing_store(args.calls_uri, f"--calls-uri {args.calls_uri}")
    note = args.note
    if note and note.startswith("@"):
        path = Path(note[1:])
        if not path.is_file():
            raise FileNotFoundError(f"--note {note}: no such file {path}")
        note = path.read_text(encoding="utf-8").strip()
    out = write_report(uri, args.out, args.experiment, args.parent, args.command_text, note,
                       figures=not args.no_figures, calls_uri=args.calls_uri)
    print(f"wrote {out} from {uri}")
    return 0


def _existing_store(uri: str, what: str) -> None:
    """Refuse a local SQLite tracking URI whose file does not exist (or is not a file)."""
    if not uri.startswith("sqlite:///"):
        return
    db = Path(uri[len("sqlite:///"):])
    if not db.is_file():
        found = "no such folder" if not db.parent.is_dir() else f"no {db.name} in it"
        raise InputError(f"{what}: {found} ({db} does not exist); give the results root of a "
                         "`musiclime run` with tracking (the folder that holds mlflow.db), or "
                         "--uri for a tracking server")


def cmd_relocate(args) -> int:
    from .workflow.recovery import relocate

    counts = relocate(args.results_root)
    print(f"{args.results_root}: the MLflow store now points at its own artifacts "
          f"({counts['experiments']} experiment(s), {counts['runs']} run(s) updated)")
    return 0


def cmd_reproduce(args) -> int:
    import time

    from .reproduce import reproduce
    from .tracking.store import sqlite_path, tracking_uri

    uri = args.uri or tracking_uri({}, args.from_root)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise MusicLimeError(f"no MLflow store at {db}: pass --from with the results root the "
                             "run was made in, or --uri with its tracking server")
    out = Path(args.results_root) if args.results_root else Path(
        "reproductions") / f"{args.run_id[:8]}-{time.strftime('%Y%m%dT%H%M%S')}"
    if out.exists() and any(out.iterdir()):
        raise MusicLimeError(f"--results-root {out} is not empty: reproduce reruns into a fresh "
                             "results root; name a new folder")
    return reproduce(args.run_id, uri, out, atol=args.atol, cores=args.cores)


def cmd_where(args) -> int:
    from .io.layout import describe_text

    try:
        print(describe_text(args.path, args.results_root))
    except ValueError as exc:
        raise MusicLimeError(str(exc)) from exc
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="musiclime", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--config-dir", action="append", default=[], metavar="DIR",
                   help="a folder of your own config files (DIR/model/my_model.yaml -> "
                        "model=my_model); DIR is also put on the Python path for their "
                        "_target_ modules. May be repeated.")
    sub = p.add_subparsers(dest="command", required=True)
    # in the order `musiclime --help` lists them
    _add_explain_command(sub)
    _add_workflow_commands(sub)
    _add_training_command(sub)
    _add_report_commands(sub)
    _add_results_root_commands(sub)
    return p


def _add_explain_command(sub) -> None:
    """One song, from an audio file to its explanation."""
    e = sub.add_parser("explain", help="explain one song (JSON, heatmap, lyrics chart, WAV)")
    e.add_argument("audio", help="audio file (wav, flac, ogg, mp3; any rate, mono or stereo)")
    e.add_argument("--lyrics", help="lyrics text file (one line per sung line)")
    e.add_argument("--stems", help="ground-truth stems folder (separator=oracle)")
    e.add_argument("--out", help="output folder (default <results_root>/explain/<song_id>)")
    e.add_argument("--song-id")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. explainer.num_samples=500")
    e.set_defaults(func=cmd_explain)


def _add_workflow_commands(sub) -> None:
    """The Snakemake workflow: run (or track) a config or a sweep."""
    for name, text in (("run", "run the Snakemake workflow for a config or a sweep"),
                       ("track", "the same as run: finish what is missing, which after a "
                                 "tracking outage is the MLflow runs")):
        r = sub.add_parser(name, help=text)
        r.add_argument("-m", "--multirun", action="store_true",
                       help="sweep: every comma-separated override value is a sweep axis")
        r.add_argument("--cores", type=int, default=2)
        r.add_argument("--profile", help="a Snakemake profile (a folder, or the name of one in "
                       "workflow/profiles/: slurm, slurm-local) whose executor runs the jobs")
        r.add_argument("-n", "--dry-run", action="store_true")
        r.add_argument("--snakemake-args", nargs=argparse.REMAINDER, default=[],
                       help="passed to snakemake unchanged (must come last)")
        r.add_argument("overrides", nargs="*", help="Hydra overrides")
        r.set_defaults(func=cmd_run)


def _add_training_command(sub) -> None:
    """The fusion head that model=hf_fusion needs before it can explain."""
    t = sub.add_parser("train-classifier", help="train a fusion head (model=hf_fusion) on "
                       "frozen-encoder embeddings of a labelled manifest")
    t.add_argument("--out", required=True, help="folder for config.json, head.pt, metrics.json")
    t.add_argument("--val-fraction", type=float, default=0.25,
                   help="validation share per label when the manifest has no train/val rows")
    t.add_argument("--epochs", type=int, default=300)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--dropout", type=float, default=0.1)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--weight-decay", type=float, default=1e-4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.add_argument("overrides", nargs="*", help="Hydra overrides: model=hf_fusion "
                   "model.audio_encoder=... dataset.manifest=... dataset.split=null")
    t.set_defaults(func=cmd_train_classifier)


def _add_report_commands(sub) -> None:
    """What a finished run or sweep shows: Snakemake's HTML report, the results page."""
    rep = sub.add_parser("report", help="Snakemake HTML report of a finished run or sweep")
    rep.add_argument("-m", "--multirun", action="store_true")
    rep.add_argument("--out", help="HTML file (default <results_root>/report.html)")
    rep.add_argument("overrides", nargs="*")
    rep.set_defaults(func=cmd_report)

    res = sub.add_parser("results", help="markdown tables and figures of a sweep from its "
                         "MLflow runs")
    res.add_argument("--results-root", default="results")
    res.add_argument("--uri", help="tracking URI (default: the results root's SQLite store)")
    res.add_argument("--experiment", default="musiclime")
    res.add_argument("--parent", help="parent run id (default: the newest invocation)")
    res.add_argument("--command-text", help="the command that produced the runs, for the page")
    res.add_argument("--note", help="markdown to put under the title (scope, caveats); "
                     "@FILE reads it from FILE")
    res.add_argument("--out", default="docs/results/calls.md")
    res.add_argument("--calls-uri", help="tracking URI of the calls benchmark's runs "
                     "(bench/calls.py --mlflow; default: the same as --uri)")
    res.add_argument("--no-figures", action="store_true",
                     help="tables only (default: also the figures, as PNGs in "
                     "<out stem>_figures/ beside --out)")
    res.set_defaults(func=cmd_results)


def _add_results_root_commands(sub) -> None:
    """What a results root holds, moving it, rerunning from it, and the config itself."""
    rel = sub.add_parser("relocate", help="after moving or copying a results folder (cp -a, "
                         "rsync -a): point its MLflow store at the new place")
    rel.add_argument("results_root")
    rel.set_defaults(func=cmd_relocate)

    rp = sub.add_parser("reproduce", help="rerun a recorded MLflow run (a configuration, or a "
                        "sweep's parent) into a fresh results root and compare: what differs "
                        "in the environment and data, and per song the max |dw|")
    rp.add_argument("run_id")
    rp.add_argument("--from", dest="from_root", default="results", metavar="RESULTS_ROOT",
                    help="the results root whose mlflow.db holds the run (default: results)")
    rp.add_argument("--uri", help="tracking URI of the run's store (an mlflow server)")
    rp.add_argument("--results-root", help="where to rerun (default: a new folder "
                    "reproductions/<run>-<time>)")
    rp.add_argument("--atol", type=float, default=0.0,
                    help="largest |weight difference| that counts as the same (default 0: bit "
                    "for bit, as on the same machine and lock)")
    rp.add_argument("--cores", type=int, default=2)
    rp.set_defaults(func=cmd_reproduce)

    w = sub.add_parser("where", help="what a results path holds: its stage and parameters")
    w.add_argument("path", help="a file or folder under a results root")
    w.add_argument("--results-root", help="the results root (to ignore its own path parts)")
    w.set_defaults(func=cmd_where)

    c = sub.add_parser("config", help="print the composed, validated config")
    c.add_argument("overrides", nargs="*")
    c.set_defaults(func=cmd_config)


def main(argv: list[str] | None = None, supervised: bool | None = None) -> int:
    """The command line. ``argv=None`` (the ``musiclime`` program) runs ``explain`` in a
    supervised child process (:mod:`musiclime.supervise`), so that a native crash or the
    out-of-memory killer is reported in one line; a call with an explicit ``argv`` (from
    Python, e.g. a test) runs in this process unless ``supervised=True``."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse fills the `overrides` positional right after AUDIO, so Hydra overrides that
        # follow options (`explain a.wav --out o x=1`) come back unrecognised: they are overrides
        if any(a.startswith("-") for a in extra) or not hasattr(args, "overrides"):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = list(args.overrides) + extra
    _setup_logging(args.verbose)
    if supervised is None:
        supervised = argv is None
    if supervised and args.command == "explain" and supervise.can_supervise():
        outcome = supervise.run(lambda: _run(args))
        if outcome.death:
            where = f" (log: {outcome.log})" if outcome.log else ""
            print(f"musiclime: error: explaining {args.audio}: {outcome.death}{where}",
                  file=sys.stderr)
        return outcome.exit_code
    return _run(args)


def _run(args) -> int:
    try:
        for folder in args.config_dir:
            from .config import add_user_config_dir

            add_user_config_dir(folder)
        return args.func(args)
    except (MusicLimeError, FileNotFoundError) as exc:
        # one line on the console; the traceback with -v
        log.debug("traceback", exc_info=True)
        print(f"musiclime: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except OSError as exc:  # a read-only or full disk, a file where a folder should be, ...
        log.debug("traceback", exc_info=True)
        print(f"musiclime: error: {describe_os_error(exc)} (-v shows the traceback)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C: every finished file is complete (atomic writes) and the lock goes with us
        log.debug("traceback", exc_info=True)
        # on a line of its own, after whatever progress bar was drawing
        print("\nmusiclime: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
