"""`gender report results/<name>`: one self-contained HTML page per experiment.

`report/index.html` opens offline (inline CSS and a few lines of inline JS, no CDN) with
its PNGs beside it. One small function per section; the figures are in `report_plots`.
Only files inside `report/` are ever written or removed.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

import numpy as np
import pandas as pd

from gender.constants import BEST_DIR, CONFIG_FILE, PREDICTIONS_FILE, REPORT_DIR
from gender.constants import JOURNAL_FILE as JOURNAL
from gender.errors import UserError
from gender.io import check_writable_dir, read_json, read_table, write_text
from tuning import report_plots as plots
from tuning.pareto import pareto_front
from tuning.scheduler import rung_epochs
from tuning.settings import SETTINGS_FILE

__all__ = ["write_report", "param_importances", "REPORT_DIR"]

_PNGS = ("curves.png", "parallel.png", "importance.png", "pareto.png", "confusion.png",
         "roc.png", "reliability.png")
_SCORES = ("best_val_f1", "best_val_accuracy", "best_latency_ms_p50", "best_epoch", "epochs",
           "status", "seconds")
# Hyperparameters keep their trials.csv names; the best-epoch scores get short headers.
_LABELS = {"best_val_f1": "val F1", "best_val_accuracy": "val acc.",
           "best_latency_ms_p50": "latency ms", "best_epoch": "best epoch",
           "epochs": "epochs run", "seconds": "s"}


@dataclass
class _Exp:
    dir: Path
    out: Path
    settings: dict  # experiment.json as written (not re-validated: a report never refuses)
    table: pd.DataFrame  # trials.csv
    best: dict | None  # best/metrics.json
    written: set


def write_report(exp_dir: str | Path) -> Path:
    """Write `exp_dir/report/index.html` (+ PNGs) and return its path."""
    exp = Path(exp_dir).resolve()
    if not (exp / SETTINGS_FILE).is_file():
        raise UserError(f"{exp_dir}: not an experiment folder (no {SETTINGS_FILE})")
    if not (exp / "trials.csv").is_file():
        raise UserError(f"{exp_dir}: no trials.csv yet (the tuning run has not finished; "
                        f"`gender dashboard {exp_dir}` follows a running one)")
    settings = _json(exp / SETTINGS_FILE)
    # Every file this page reads is checked first, so a damaged one is one line naming it.
    table = read_table(exp / "trials.csv", "trials table", ("trial_id", "status"))
    if not len(table):
        raise UserError(f"{exp / 'trials.csv'}: no trials recorded, nothing to report")
    out = check_writable_dir(exp / REPORT_DIR, "report folder")
    out.mkdir(exist_ok=True)
    best = exp / "best" / "metrics.json"
    ctx = _Exp(exp, out, settings, table, _json(best) if best.is_file() else None, set())
    sections = [_trials(ctx), _curves(ctx), _parallel(ctx), _importance(ctx), _pareto(ctx),
                _best(ctx), _provenance(ctx)]
    for stale in set(_PNGS) - ctx.written:  # e.g. roc.png after the data folder went away
        (out / stale).unlink(missing_ok=True)
    return write_text(out / "index.html", _page(ctx, sections))


# -- helpers -------------------------------------------------------------------------------

def _json(path: Path) -> dict:
    return read_json(path, "JSON file this experiment wrote")


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return ""
    if isinstance(v, (float, np.floating)):
        return f"{v:.4g}"
    return str(v)


def _table(rows: list[dict], cls: str = "", labels: dict | None = None) -> str:
    """A table of dicts (the first row's keys are the columns); numbers sort as numbers."""
    if not rows:
        return "<p class=note>(none)</p>"
    cols = [c for c in rows[0] if not c.startswith("_")]  # "_css": the row's classes
    head = "".join(f"<th>{escape(str((labels or {}).get(c, c)))}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            num = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            attr = f' data-v="{"" if pd.isna(v) else float(v)}"' if num else ""
            cells.append(f"<td{attr}>{escape(_fmt(v))}</td>")
        css = " ".join(str(x).replace(" ", "-") for x in (r.get("status"), r.get("_css")) if x)
        body.append(f'<tr class="{escape(css)}">' if css else "<tr>")
        body.append(f"{''.join(cells)}</tr>")
    return (f'<div class=scroll><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _kv(d: dict) -> str:
    return _table([{"": k, "value": v if not isinstance(v, (dict, list)) else json.dumps(v)}
                   for k, v in d.items()], "kv")


def _img(ctx: _Exp, name: str, draw, alt: str) -> str:
    draw(ctx.out / name)
    ctx.written.add(name)
    return f'<img src="{escape(name)}" alt="{escape(alt)}">'


def _note(text: str) -> str:
    return f"<p class=note>{escape(text)}</p>"


def _params(ctx: _Exp) -> list[str]:
    """The hyperparameters the experiment searched (its space), as trials.csv holds them."""
    space = ctx.settings.get("space")
    names = list(space) if isinstance(space, dict) else []
    return [p for p in names if p in ctx.table and ctx.table[p].notna().any()]


# -- sections ------------------------------------------------------------------------------

def _trials(ctx: _Exp):
    t = ctx.table
    best_id = (ctx.best or {}).get("trial_id")
    cols = ["trial_id", *_params(ctx), *[c for c in _SCORES if c in t]]
    if "error" in t and t["error"].notna().any():
        cols.append("error")
    rows = [{**{c: r[c] for c in cols}, "_css": "best" if r["trial_id"] == best_id else ""}
            for _, r in t.iterrows()]
    counts = ", ".join(f"{n} {s}" for s, n in t["status"].value_counts().items())
    text = (f"{len(t)} trials ({counts}). Click a header to sort. Empty cells: the parameter "
            f"does not apply (momentum: sgd/rmsprop only, alpha: rmsprop only). Bold: the "
            f"trial retrained as best.")
    return ("trials", "Trials", _note(text) + _table(rows, "sortable trials", _LABELS))


def _curves(ctx: _Exp):
    curves = {}
    for _, r in ctx.table.iterrows():
        csv = ctx.dir / f"trial_{r['trial_id']}" / "progress.csv"
        if csv.is_file():
            with contextlib.suppress(ValueError, pd.errors.ParserError):  # counted as missing
                curves[r["trial_id"]] = (pd.read_csv(csv), r["status"])
    s = ctx.settings
    rungs = (rung_epochs(s.get("grace_period", 1), s.get("reduction_factor", 2),
                         s.get("max_epochs", 1)) if s.get("scheduler", "asha") == "asha" else [])
    body = _img(ctx, "curves.png", lambda p: plots.curves_png(
        curves, rungs, s.get("max_epochs", 1), p), "validation F1 per epoch")
    gone = ctx.table[~ctx.table["trial_id"].isin(list(curves))]
    # A trial the budget or the end of the search stopped before its first epoch has no
    # curve to draw; one that trained and left none here keeps it elsewhere.
    epochs = pd.to_numeric(gone.get("epochs", pd.Series(np.nan, gone.index)), errors="coerce")
    for ids, why in ((gone.loc[epochs == 0, "trial_id"], "Stopped before a first epoch, so no "
                      "curve"),
                     (gone.loc[epochs != 0, "trial_id"], "Trained, but no readable local "
                      "progress.csv here (remote --storage?)")):
        if len(ids):
            body += _note(f"{why}: {', '.join(map(str, ids))}.")
    return ("curves", "Validation F1 per epoch", body)


def _parallel(ctx: _Exp):
    t, space = ctx.table, ctx.settings.get("space", {})
    # Varied: more than one value, "does not apply" counting as one (alpha: rmsprop only).
    params = [p for p in _params(ctx)
              if t[p].map(lambda v: plots.value_key(v) if pd.notna(v) else "n/a").nunique() > 1]
    fixed = [f"{p}={plots.value_key(t[p].dropna().iloc[0])}" for p in _params(ctx)
             if p not in params]
    if not params:
        return ("parallel", "Hyperparameters (parallel coordinates)",
                _note("Nothing varied between trials."))
    body = _img(ctx, "parallel.png", lambda p: plots.parallel_png(t, params, space, p),
                "parallel coordinates of the hyperparameters")
    logs = [p for p in params if space.get(p, {}).get("log")]
    body += _note("Lines coloured by best validation F1 (dashed: diverged or errored); "
                  "'n/a': the parameter does not apply."
                  + (f" Log axes: {', '.join(logs)}." if logs else "")
                  + (f" Fixed in this experiment: {', '.join(fixed)}." if fixed else ""))
    return ("parallel", "Hyperparameters (parallel coordinates)", body)


def param_importances(study) -> tuple[dict[str, dict[str, float]] | None, str]:
    """fANOVA and mean-decrease-impurity importances of the parameters every completed trial
    has and that varied, on the first objective (validation F1). -> (None, why) when there
    is too little to say."""
    import optuna
    from optuna.importance import (
        FanovaImportanceEvaluator,
        MeanDecreaseImpurityImportanceEvaluator,
        get_param_importances,
    )

    states = pd.Series([t.state.name for t in study.get_trials(deepcopy=False)])
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if t.values]
    held = ", ".join(f"{n} {s.lower()}" for s, n in states.value_counts().items()) or "nothing"
    if len(done) < 2:
        return None, f"Needs at least 2 completed Optuna trials; the journal holds {held}."
    common = set.intersection(*(set(t.params) for t in done))
    varied = sorted(p for p in common if len({repr(t.params[p]) for t in done}) > 1)
    if not varied:
        return None, f"No parameter varied across the {len(done)} completed trials."
    out = {}
    for name, ev in (("fANOVA", FanovaImportanceEvaluator(seed=0)),
                     ("mean decrease impurity", MeanDecreaseImpurityImportanceEvaluator(seed=0))):
        try:
            imp = get_param_importances(study, evaluator=ev, params=varied,
                                        target=lambda t: t.values[0])
        except (ValueError, RuntimeError) as e:  # e.g. a distribution that changed on resume
            return None, f"Optuna could not compute importances: {e}"
        out[name] = {k: float(v) for k, v in imp.items()}
    return out, f"From {len(done)} completed Optuna trials (the journal holds {held})."


def _importance(ctx: _Exp):
    title = "Hyperparameter importance (Optuna)"
    journal = ctx.dir / JOURNAL
    if not journal.is_file():
        return ("importance", title, _note(f"No {JOURNAL} in this experiment."))
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=ctx.settings.get("name", ctx.dir.name),
                                  storage=JournalStorage(JournalFileBackend(str(journal))))
    except KeyError:
        return ("importance", title,
                _note(f"{JOURNAL} holds no study named {ctx.settings.get('name')!r}."))
    imps, why = param_importances(study)
    if imps is None:
        return ("importance", title, _note(why))
    rows = [{"parameter": p, **{ev: imp[p] for ev, imp in imps.items()}}
            for p in next(iter(imps.values()))]
    body = _img(ctx, "importance.png", lambda p: plots.importance_png(imps, p),
                "hyperparameter importance") + _table(rows, "sortable")
    body += _note(why + " Target: the validation F1 Ray passed to Optuna when each trial "
                  "ended (its last epoch; for trials ASHA stopped, the epoch it stopped them), "
                  "not the best epoch shown elsewhere. Conditional parameters (momentum, alpha) "
                  "are left out unless every trial has them.")
    return ("importance", title, body)


def _pareto(ctx: _Exp):
    t = ctx.table
    ok = t["status"].isin(["completed", "stopped early"]).to_numpy()
    pts = t[["best_val_f1", "best_latency_ms_p50"]].astype(float).to_numpy()
    front = pareto_front(np.where(ok[:, None], pts, np.nan))
    if not front.any():
        return ("pareto", "F1 against latency", _note("No trial finished training."))
    body = _img(ctx, "pareto.png", lambda p: plots.pareto_png(t, front, p), "Pareto front")
    cols = ["trial_id", "best_val_f1", "best_latency_ms_p50",
            *[c for c in ("arch", "batch_norm", "width", "head", "image_size") if c in t]]
    rows = t[front].sort_values("best_latency_ms_p50")[cols].to_dict("records")
    body += _note("Red: the Pareto front (no other trial has higher F1 and lower latency at "
                  "once). Latency: batch 1 on the trial's device during tuning, at the best "
                  f"epoch. Search objective: {ctx.settings.get('objective', 'f1')}.")
    return ("pareto", "F1 against latency", body + _table(rows, "sortable", _LABELS))


def _roc(ctx: _Exp):
    """-> ((fpr, tpr, auc) or None, note): from the test probabilities the retrain saved
    beside its metrics (the model is never run again to draw a plot)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    path = ctx.dir / BEST_DIR / PREDICTIONS_FILE
    if not path.is_file():
        return None, f"ROC skipped: no {BEST_DIR}/{PREDICTIONS_FILE}."
    try:
        df = pd.read_csv(path)
        y, p = df["label"].to_numpy(dtype=int), df["prob_male"].to_numpy(dtype=float)
    except (ValueError, KeyError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        return None, f"ROC skipped: {path} is not a predictions table ({type(e).__name__})."
    if len(np.unique(y)) < 2:
        return None, "ROC skipped: the test split holds one class only."
    fpr, tpr, _ = roc_curve(y, p)
    auc = float(roc_auc_score(y, p))
    return (fpr, tpr, auc), f"ROC of the {len(y)} test images' saved probabilities."


def _ci(m: dict, key: str) -> str:
    lo, hi = (m.get(f"{key}_ci95") or [None, None])[:2]
    if key not in m or lo is None:
        return _fmt(m.get(key))
    return f"{m[key]:.4f} (95% {lo:.3f} to {hi:.3f})"


def _best(ctx: _Exp):
    title = "Best model (retrained on train+val, tested once)"
    m = ctx.best
    if m is None:
        return ("best", title, _note(
            "No best/ folder: the retrain has not run (gender retrain results/NAME)."))
    cfg = ctx.dir / BEST_DIR / CONFIG_FILE
    body = "<div class=row>"
    if "confusion" in m:
        body += _img(ctx, "confusion.png", lambda p: plots.confusion_png(m["confusion"], p),
                     "confusion matrix")
    roc, note = _roc(ctx)
    if roc is not None:
        body += _img(ctx, "roc.png", lambda p: plots.roc_png(*roc, p), "ROC curve")
    if m.get("reliability"):
        body += _img(ctx, "reliability.png",
                     lambda p: plots.reliability_png(m["reliability"], m["ece"], p),
                     "reliability diagram")
    body += "</div>" + (_note(note.strip()) if note else "")
    facts = {"trial_id": m.get("trial_id"), "members": m.get("member_trials"),
             "accuracy": _ci(m, "accuracy"), "recall_female": _ci(m, "recall_female"),
             "recall_male": _ci(m, "recall_male"), "f1": m.get("f1"), "auc": m.get("auc"),
             "ece": m.get("ece"), "nll": m.get("nll"), "n_test": m.get("n_test"),
             "n_female / n_male": f"{m.get('n_female')} / {m.get('n_male')}",
             "n_train": m.get("n_train"), "epochs": m.get("epochs"),
             "trained_on": m.get("trained_on"), "tta_flip": m.get("tta_flip"),
             "temperature": m.get("temperature"), "val_f1_in_tuning": m.get("val_f1_in_tuning")}
    timing = ("latency_ms_p50", "latency_ms_p95", "images_per_s_batch64", "train_seconds")
    body += "<div class=row><div><h3>Test metrics</h3>" + _kv(
        {k: v for k, v in facts.items() if v is not None})
    body += _note("Intervals: Wilson 95 %: what a difference of one point means at this "
                  "test size. ECE: expected calibration error of the shown confidence.")
    body += "</div><div><h3>Timings (CPU of the retrain)</h3>"
    body += _kv({k: m[k] for k in timing if k in m}) + "</div>"
    exported = _json(cfg) if cfg.is_file() else {}
    members = exported.pop("members", None)
    if exported:
        body += "<div><h3>What was exported (config.json)</h3>" + _kv(exported) + "</div>"
    body += "</div>"
    if isinstance(members, list) and members:
        body += ("<h3>Its members (config.json)</h3>" + _members(members)
                 + _note("The model answers the mean of its members' P(male). Epochs "
                         "scheduled: the learning-rate schedule's length; each member "
                         "stopped where its trial's validation F1 peaked."))
    if m.get("validation_comparison"):
        body += ("<h3>Export recipes compared on the validation split</h3>"
                 + _table(m["validation_comparison"], "sortable")
                 + _note("Members' trial checkpoints (trained on the training split) on the "
                         "validation split; temperature 'out of fold': fitted on one half, "
                         "scored on the other."))
    return ("best", title, body)


def _members(members: list) -> str:
    """config.json's members, one row each: what it trained on and for how many epochs
    (a retrained member's `retrain_epochs`, a trial member's `epochs`), then its
    TrainConfig; a field of it that differs from the member's own is shown as 'config NAME'."""
    rows = []
    for m in members:
        if not isinstance(m, dict):
            continue
        row = {k: v for k, v in m.items() if k not in ("config", "retrain_epochs", "epochs")}
        row["epochs trained"] = m.get("retrain_epochs", m.get("epochs"))
        cfg = m.get("config")
        for k, v in (cfg if isinstance(cfg, dict) else {}).items():
            name = "epochs scheduled" if k == "epochs" else k
            if name not in row:
                row[name] = v
            elif row[name] != v:
                row[f"config {k}"] = v
        rows.append(row)
    cols = list(dict.fromkeys(k for r in rows for k in r))  # the union, first seen first
    return _table([{c: r.get(c) for c in cols} for r in rows], "members")


def _provenance(ctx: _Exp):
    from importlib.metadata import PackageNotFoundError, version

    env_file = ctx.dir / "best" / "environment.json"
    env = _json(env_file) if env_file.is_file() else {}
    s = dict(ctx.settings)
    space = s.pop("space", {})
    nodes = {n for v in ctx.table.get("nodes", pd.Series(dtype=str)).dropna()
             for n in str(v).split(",") if n}
    try:
        ours = version("gender-tune")
    except PackageNotFoundError:
        ours = "unknown"
    splits = ctx.dir / "splits.csv"
    split_counts = (pd.read_csv(splits)["split"].value_counts().to_dict()
                    if splits.is_file() else {})
    facts = {"command": env.get("command", "(best/environment.json absent)"),
             "data": s.get("data"), "data fingerprint": (ctx.best or {}).get("data_fingerprint"),
             "images per split": split_counts, "Ray nodes used": len(nodes),
             "cpus per trial": s.get("cpus_per_trial") or "Ray default",
             "gpus per trial": s.get("gpus_per_trial") or 0,
             **{k: v for k, v in env.items() if k != "command"},
             "gender-tune": ours, "report written": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    body = "<h3>What produced it</h3>" + _kv(facts)
    body += f"<h3>Experiment settings ({SETTINGS_FILE})</h3>" + _kv(s)
    body += "<h3>Search space</h3>" + _kv(space)
    return ("provenance", "Provenance", body)


# -- page ----------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1200px;padding:0 1.5em 3em;
color:#222}
nav{position:sticky;top:0;background:#fff;padding:.6em 0;border-bottom:1px solid #ddd}
nav a{margin-right:1em}
section{margin-top:2em}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}
th,td{border:1px solid #ddd;padding:3px 7px;text-align:left;white-space:nowrap}
th{background:#f3f3f3}
table.sortable th{cursor:pointer}
table.sortable th[data-dir=asc]:after{content:" \\25B2"}
table.sortable th[data-dir=desc]:after{content:" \\25BC"}
tr.diverged td,tr.errored td{color:#a33}
tr.stopped-early td{color:#555}
td[data-v]{text-align:right;font-variant-numeric:tabular-nums}
img{max-width:100%;border:1px solid #eee}
.scroll{overflow-x:auto;max-width:100%}
.row{display:flex;flex-wrap:wrap;gap:1.5em;align-items:flex-start}
.row>div{min-width:0;max-width:100%}
.kv td+td{white-space:normal;overflow-wrap:anywhere;min-width:12em;max-width:60em}
.note{color:#555}
.kv td:first-child,tr.best td{font-weight:600}
.kv td[data-v]{text-align:left}
"""

_JS = """
document.querySelectorAll("table.sortable th").forEach((th, i) => th.onclick = () => {
  const body = th.closest("table").tBodies[0], asc = th.dataset.dir !== "asc";
  th.parentNode.querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = asc ? "asc" : "desc";
  const key = td => td.dataset.v === undefined ? td.textContent
    : (td.dataset.v === "" ? null : Number(td.dataset.v));
  [...body.rows].sort((a, b) => {
    const x = key(a.cells[i]), y = key(b.cells[i]);
    if (x === null || y === null) return (x === null) - (y === null);  // blanks last
    const c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return asc ? c : -c;
  }).forEach(r => body.appendChild(r));
});
"""


def _page(ctx: _Exp, sections: list[tuple[str, str, str]]) -> str:
    name = ctx.settings.get("name", ctx.dir.name)
    nav = "".join(f'<a href="#{sid}">{escape(title.split(" (")[0])}</a>'
                  for sid, title, _ in sections)
    body = "".join(f'<section id="{sid}"><h2>{escape(title)}</h2>{html}</section>'
                   for sid, title, html in sections)
    best = ctx.best
    lead = (f"best: trial {best.get('trial_id')}, test F1 {_fmt(best.get('f1'))}, accuracy "
            f"{_fmt(best.get('accuracy'))}" if best else "no retrained best model")
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(name)}: tuning report</title><style>{_CSS}</style></head><body>"
            f"<h1>Experiment {escape(name)}</h1><p>{len(ctx.table)} trials, objective "
            f"{escape(str(ctx.settings.get('objective', 'f1')))}; {escape(lead)}.</p>"
            f"<nav>{nav}</nav>{body}<script>{_JS}</script></body></html>\n")
