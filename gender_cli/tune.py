"""`gender tune`, `retrain`, `report`, `dashboard`: flags -> TuneSettings -> tuning."""

from __future__ import annotations

import time
from pathlib import Path

from gender.constants import BEST_DIR, CONFIG_FILE
from gender.io import read_json
from gender_cli.flags import auto_or_nonneg_int, nonneg_int, port_number, pos_int, positive
from gender_cli.flags import number as float_

__all__ = ["add_commands"]


def add_commands(sub) -> None:
    tu = sub.add_parser("tune", help="Ray Tune + Optuna + ASHA search, then retrain the best")
    tu.add_argument("--data", default=None, help="dataset folder (default: data/synthetic)")
    tu.add_argument("--name", default=None, help="experiment name (default: a timestamp)")
    tu.add_argument("--results", default="results", help="output root (default: results)")
    tu.add_argument("--storage", default=None,
                    help="Ray storage for checkpoints: a shared folder, s3:// or gs://")
    tu.add_argument("--num-samples", type=pos_int, default=None,
                    help="trials (default 20; with --time-budget alone, until it runs out)")
    tu.add_argument("--max-epochs", type=pos_int, default=None, help="epoch cap (default 20)")
    tu.add_argument("--grace-period", type=pos_int, default=None, help="ASHA (default 2)")
    tu.add_argument("--reduction-factor", type=pos_int, default=None, help="ASHA (default 3)")
    tu.add_argument("--objective", default="f1", choices=["f1", "f1,latency"])
    tu.add_argument("--cpus-per-trial", type=float_, default=None)
    tu.add_argument("--gpus-per-trial", type=float_, default=None,
                    help="whole or a fraction such as 0.25 (four trials per GPU)")
    tu.add_argument("--max-concurrent", type=pos_int, default=None,
                    help="trials at once (default: what fits the cluster at start)")
    tu.add_argument("--time-budget", type=positive, default=None,
                    help="seconds of tuning; without --num-samples, trials start until then")
    tu.add_argument("--space", default=None, help="YAML/JSON file narrowing the search space")
    tu.add_argument("--seed-grid", action="store_true",
                    help="start with the original notebook's 12 configurations")
    tu.add_argument("--address", default=None, help="existing Ray cluster (auto, HOST:PORT)")
    tu.add_argument("--no-default-first", dest="default_first", action="store_false",
                    help="don't start with the package's default configuration")
    tu.add_argument("--seed", type=nonneg_int, default=0,
                    help="seed of the search and of every trial's training (default 0)")
    tu.add_argument("--split-seed", type=nonneg_int, default=0,
                    help="seed of the train/val/test split, independent of --seed (default 0)")
    tu.add_argument("--no-retrain", dest="retrain", action="store_false")
    tu.add_argument("--ensemble", type=pos_int, default=None, metavar="K",
                    help="export the top K distinct configurations, retrained and averaged "
                         "(default 1: the single best)")
    tu.add_argument("--seeds", type=pos_int, default=None, metavar="N",
                    help="retrain each exported configuration with N training seeds (the "
                         "trial's own first) and average them (default 1)")
    tu.add_argument("--trial-members", type=auto_or_nonneg_int, default=None, metavar="K",
                    help="also average the top K trials' own checkpoints (trained on the "
                         "training split, no extra training); default auto: as many of the "
                         "top three as score best together on validation; 0: none")
    tu.add_argument("--no-tta", dest="tta", action="store_false", default=None,
                    help="don't average each picture with its mirror image")
    tu.add_argument("--no-calibrate", dest="calibrate", action="store_false", default=None,
                    help="don't fit a temperature to the validation predictions")
    tu.add_argument("--quick", action="store_true",
                    help="the demo preset (make demo): about 3 minutes on 2 CPUs")
    tu.add_argument("--resume", default=None, metavar="EXPERIMENT",
                    help="continue results/<name> after an interrupted driver")
    tu.add_argument("--quiet", action="store_true", help="no progress table")
    tu.set_defaults(handler=cmd_tune, flags_of=_flags_of(tu))

    rt = sub.add_parser("retrain", help="retrain an experiment's best trial into best/ "
                                         "(continues an interrupted retrain)")
    rt.add_argument("experiment", help="results/<name>")
    rt.set_defaults(handler=cmd_retrain)

    rp = sub.add_parser("report", help="write results/<name>/report/index.html")
    rp.add_argument("experiment", help="results/<name>")
    rp.set_defaults(handler=cmd_report)

    db = sub.add_parser("dashboard", help="TensorBoard (with HParams) on results/<name>")
    db.add_argument("experiment", help="results/<name> (may still be running)")
    db.add_argument("--port", type=port_number, default=6006)
    db.set_defaults(handler=cmd_dashboard)


def _flags_of(parser) -> dict[str, tuple[str, object]]:
    """dest -> (flag as typed, default) for every option of `parser`."""
    return {a.dest: (a.option_strings[0], a.default)
            for a in parser._actions if a.option_strings and a.dest != "help"}


def _settings(args):
    from gender.data.layouts import detect_layout
    from gender.data.synth import resolve_data
    from gender.io import check_writable_dir
    from tuning.resources import TrialResources
    from tuning.settings import QUICK, TuneSettings
    from tuning.space import QUICK_SPACE, default_point, load_space

    # Every flag is checked before anything slow (drawing data, starting Ray) happens,
    # and the folders the run will write to are tried now, not when it ends.
    if args.data is not None:
        detect_layout(args.data)
    check_writable_dir(Path(args.results), "--results")
    storage = args.storage
    if storage and "://" not in storage:  # a local folder (Ray wants it absolute)
        storage = str(check_writable_dir(Path(storage), "--storage").resolve())
    preset = QUICK if args.quick else {}
    given = {k: getattr(args, k) for k in ("num_samples", "max_epochs", "grace_period",
                                           "reduction_factor", "time_budget", "ensemble",
                                           "seeds", "trial_members", "tta", "calibrate")
             if getattr(args, k) is not None}
    if "time_budget" in given and "num_samples" not in given:
        given["num_samples"] = None  # the budget, not a count, ends the search
    space = load_space(args.space, base=QUICK_SPACE if args.quick else None)
    TrialResources(1.0 if args.cpus_per_trial is None else args.cpus_per_trial,
                   0.0 if args.gpus_per_trial is None else args.gpus_per_trial)
    settings = TuneSettings(
        data=args.data or "",
        name=args.name if args.name is not None else time.strftime("tune-%Y%m%d-%H%M%S"),
        results=args.results, storage=storage, objective=args.objective,
        cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
        max_concurrent=args.max_concurrent, seed=args.seed, split_seed=args.split_seed,
        seed_grid=args.seed_grid, space=space,
        address=args.address, retrain=args.retrain, quick=args.quick,
        enqueue=[default_point(space)] if args.default_first else [], **{**preset, **given})
    check_writable_dir(settings.exp_dir, "--name")  # e.g. a file of that name in --results
    settings.data = str(Path(resolve_data(args.data)).resolve())
    return settings


def _summary(settings, summary: dict) -> None:
    exp = settings.exp_dir
    print(f"\n{summary['trials']} trials: " + ", ".join(
        f"{n} {s}" for s, n in sorted(summary["statuses"].items())))
    best = summary.get("best")
    if best:
        from tuning.space import CONDITIONAL

        export = read_json(exp / BEST_DIR / CONFIG_FILE)
        for m in export["members"]:
            cfg = {k: v for k, v in m["config"].items() if v is not None}
            shown = {k: v for k, v in cfg.items()
                     if k not in CONDITIONAL or cfg.get("optimizer") in CONDITIONAL[k]}
            epochs = m.get("retrain_epochs", m.get("epochs"))
            print(f"member (trial {m.get('member', m['trial_id'])}, {epochs} epochs on "
                  f"{m.get('trained_on', 'train+val')}): "
                  + ", ".join(f"{k}={v}" for k, v in shown.items()))
        print(f"exported: {len(export['members'])} member(s), mirrored picture "
              f"{'on' if export['tta_flip'] else 'off'}, temperature "
              f"{export['temperature']:.3f}")
        lo, hi = best["accuracy_ci95"]
        print(f"test (held-out, once, {best['n_test']} images): accuracy {best['accuracy']:.4f} "
              f"(95% {lo:.3f}-{hi:.3f})  F1 {best['f1']:.4f}  AUC {best['auc']:.4f}  "
              f"recall female {best['recall_female']:.3f} / male {best['recall_male']:.3f}  "
              f"ECE {best['ece']:.3f}")
        print(f"latency p50 {best['latency_ms_p50']:.2f} ms, "
              f"{best['images_per_s_batch64']:.0f} img/s at batch 64 (this machine's CPU)")
        print(f"best model: {exp / BEST_DIR}  (gender predict {exp / BEST_DIR} IMAGES...)")
    print(f"outputs: {exp}  (trials.csv, best/, splits.csv)")
    if summary.get("report"):
        print(f"report: {summary['report']}")
    print(f"dashboard: gender dashboard {exp}   (TensorBoard on 127.0.0.1, HParams view)")


def cmd_tune(args) -> int:
    from gender.errors import UserError
    from tuning.cluster import reach_ray
    from tuning.settings import TuneSettings

    verbose = 0 if args.quiet else 1
    if args.resume:
        # The experiment's settings are in its folder; a flag here would be ignored.
        given = [flag for dest, (flag, default) in args.flags_of.items()
                 if dest not in ("resume", "quiet") and getattr(args, dest) != default]
        if given:
            raise UserError(f"--resume {args.resume}: {', '.join(given)} cannot change a "
                            f"resumed experiment (its settings are in {args.resume}/"
                            "experiment.json); resume with --quiet at most")
        settings = TuneSettings.load(args.resume)
        from tuning.experiment import resume_experiment

        summary = resume_experiment(args.resume, verbose=verbose)
    else:
        settings = _settings(args)
        settings.check_new()
        # Ray is reached (and a trial checked to fit) before the training stack is
        # imported, so a wrong address or an impossible request is refused in seconds.
        reach_ray(settings.address, settings.cpus_per_trial, settings.gpus_per_trial,
                  quiet=args.quiet)
        from tuning.experiment import run_experiment

        summary = run_experiment(settings, verbose=verbose)
    _summary(settings, summary)
    return 0


def cmd_retrain(args) -> int:
    from tuning.retrain import retrain_best
    from tuning.settings import TuneSettings

    m = retrain_best(args.experiment)
    _summary(TuneSettings.load(args.experiment), {"trials": "", "statuses": {}, "best": m})
    return 0


def cmd_report(args) -> int:
    from tuning.report import write_report

    print(write_report(args.experiment))
    return 0


def cmd_dashboard(args) -> int:
    from tuning.dashboard import run_dashboard

    return run_dashboard(args.experiment, port=args.port)
