"""`TuneSettings`: everything one experiment was asked to do, saved as
`experiment.json` so `--resume` and `gender retrain` rebuild it from the folder alone."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from gender.config import UNSAVED_DEFAULTS
from gender.constants import EXPERIMENT_FILE, TRIALS_FILE
from gender.errors import ConfigError, UserError
from gender.io import read_json, write_json
from tuning.space import SEARCHABLE, validate_space, widen_for

__all__ = ["TuneSettings", "OBJECTIVES", "SAMPLERS", "SCHEDULERS", "SETTINGS_FILE",
           "DEFAULT_NUM_SAMPLES", "QUICK"]

OBJECTIVES = ("f1", "f1,latency")
SAMPLERS = ("tpe", "random")  # random: a baseline (benchmarks/efficiency.py)
SCHEDULERS = ("asha", "fifo")  # fifo: no early stopping, every trial runs to max_epochs
SETTINGS_FILE = EXPERIMENT_FILE
DEFAULT_NUM_SAMPLES = 20
# `--quick` (`make demo`): a few minutes on 2 CPUs on the synthetic data, 32 px and
# width 0.125 (QUICK_SPACE). Rungs at 2 and 4 epochs stop weak trials early; the time cap
# bounds a slow machine.
QUICK = {"num_samples": 8, "max_epochs": 8, "grace_period": 2, "reduction_factor": 2,
         "time_budget": 60}


_NUMBER = (int, float)
_KIND_NAMES = {_NUMBER: "a number", (int,): "a whole number", (bool,): "true or false",
               (str,): "a string", (dict,): "a mapping", (list,): "a list"}
_TYPES = {"data": (str,), "name": (str,), "results": (str,), "storage": (str,),
          "num_samples": (int,), "max_epochs": (int,), "grace_period": (int,),
          "reduction_factor": (int,), "objective": (str,), "sampler": (str,),
          "scheduler": (str,), "cpus_per_trial": _NUMBER, "gpus_per_trial": _NUMBER,
          "time_budget": _NUMBER, "max_concurrent": (int,), "seed": (int,),
          "split_seed": (int,), "seed_grid": (bool,), "space": (dict,), "enqueue": (list,),
          "address": (str,), "retrain": (bool,), "quick": (bool,), "ensemble": (int,),
          "seeds": (int,), "trial_members": (int,), "tta": (bool,), "calibrate": (bool,)}
_OPTIONAL = {"storage", "num_samples", "cpus_per_trial", "gpus_per_trial", "time_budget",
             "max_concurrent", "address", "trial_members"}


@dataclass
class TuneSettings:
    data: str  # dataset folder, as seen by the driver
    name: str
    results: str = "results"  # local folder for trials.csv, best/, report/
    storage: str | None = None  # Ray's storage (local path or s3://, gs://); default: results
    # None: as many trials as the time budget allows (`--time-budget` alone).
    num_samples: int | None = DEFAULT_NUM_SAMPLES
    # From scratch on a few thousand real faces the validation F1 climbs for most of
    # this cap (README: "What these choices bought").
    max_epochs: int = 20
    grace_period: int = 2
    reduction_factor: int = 3
    objective: str = "f1"
    sampler: str = "tpe"  # one of SAMPLERS
    scheduler: str = "asha"  # one of SCHEDULERS
    cpus_per_trial: float | None = None
    gpus_per_trial: float | None = None
    time_budget: float | None = None
    max_concurrent: int | None = None  # default: the trials that fit the cluster at start
    seed: int = 0  # the search's and every trial's training seed
    split_seed: int = 0  # the train/val/test split's own seed: the test faces stay put
    seed_grid: bool = False
    space: dict = field(default_factory=dict)
    enqueue: list = field(default_factory=list)  # configurations to try first (partial dicts)
    address: str | None = None
    retrain: bool = True
    # What `best/` exports (README: "What gets exported"): the best configuration (or the
    # top-k distinct ones) retrained with `seeds` training seeds each, the trial's own first,
    # averaged with the top `trial_members` trials' own checkpoints (None: as many of the
    # top three as score best together on validation), also seeing the mirrored picture,
    # with a temperature fitted on the trials' validation predictions.
    ensemble: int = 1
    seeds: int = 1
    trial_members: int | None = None
    tta: bool = True
    calibrate: bool = True
    quick: bool = False

    def __post_init__(self) -> None:
        def check(ok: bool, msg: str) -> None:
            if not ok:
                raise ConfigError(msg)

        # Types first (experiment.json may hold anything), so the rules below compare numbers.
        for name, kinds in _TYPES.items():
            v = getattr(self, name)
            if v is None and name in _OPTIONAL:
                continue
            check(isinstance(v, kinds) and (bool in kinds or not isinstance(v, bool)),
                  f"{name} must be {_KIND_NAMES[kinds]}, got {v!r}")
        check(self.num_samples is not None or self.time_budget is not None,
              "--num-samples may be left open only with --time-budget (trials until it ends)")
        check(self.num_samples is None or self.num_samples >= 1,
              f"--num-samples must be >= 1, got {self.num_samples}")
        check(self.max_epochs >= 1, f"--max-epochs must be >= 1, got {self.max_epochs}")
        check(1 <= self.grace_period <= self.max_epochs,
              f"--grace-period must be in [1, --max-epochs], got {self.grace_period}")
        check(self.reduction_factor >= 2,
              f"--reduction-factor must be >= 2, got {self.reduction_factor}")
        check(self.objective in OBJECTIVES, f"--objective must be one of {', '.join(OBJECTIVES)}")
        check(self.sampler in SAMPLERS, f"sampler must be one of {', '.join(SAMPLERS)}")
        check(self.scheduler in SCHEDULERS, f"scheduler must be one of {', '.join(SCHEDULERS)}")
        check(self.max_concurrent is None or self.max_concurrent >= 1,
              f"--max-concurrent must be >= 1, got {self.max_concurrent}")
        check(self.time_budget is None or self.time_budget > 0,
              f"--time-budget must be > 0 seconds, got {self.time_budget}")
        check(1 <= self.ensemble <= 10, f"--ensemble must be in [1, 10], got {self.ensemble}")
        check(1 <= self.seeds <= 10, f"--seeds must be in [1, 10], got {self.seeds}")
        check(self.trial_members is None or 0 <= self.trial_members <= 10,
              f"--trial-members must be auto or in [0, 10], got {self.trial_members}")
        check(bool(self.name) and "/" not in self.name and self.name not in (".", ".."),
              f"--name must be a plain folder name, got {self.name!r}")
        for name in ("seed", "split_seed"):  # numpy and Optuna seeds are 32-bit
            check(0 <= getattr(self, name) < 2**32,
                  f"--{name.replace('_', '-')} must be in [0, 2**32), got {getattr(self, name)}")

    @property
    def ray_num_samples(self) -> int:
        return -1 if self.num_samples is None else self.num_samples  # Ray: -1 = no limit

    @property
    def exp_dir(self) -> Path:
        return Path(self.results).resolve() / self.name

    @property
    def storage_path(self) -> str:
        return self.storage or str(Path(self.results).resolve())

    @property
    def tune_path(self) -> str:
        """Where Ray Tune keeps this experiment (its state, trials and checkpoints).
        A URI (s3://...) must not go through Path, which would fold its "//"."""
        return (f"{self.storage.rstrip('/')}/{self.name}" if self.storage
                else str(self.exp_dir))

    def save(self) -> None:
        write_json(dataclasses.asdict(self), self.exp_dir / SETTINGS_FILE)

    def check_new(self) -> None:
        """A new experiment never writes over another one of the same name."""
        exp = self.exp_dir
        if (exp / "tuner.pkl").exists() or (exp / TRIALS_FILE).exists():
            raise UserError(f"--name {self.name}: {exp} already holds an experiment "
                            f"(use --resume {exp} or another --name)")

    @classmethod
    def load(cls, exp_dir: str | Path) -> TuneSettings:
        path = Path(exp_dir) / SETTINGS_FILE
        if not path.is_file():
            raise UserError(f"{exp_dir}: not an experiment folder (no {SETTINGS_FILE})")
        d = read_json(path, "experiment settings file")
        # Experiments saved before `seeds` existed retrained one seed per configuration;
        # before `trial_members`, no trial's own checkpoint joined the export.
        d.setdefault("seeds", 1)
        d.setdefault("trial_members", 0)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"{path}: unknown setting(s) {', '.join(unknown)}")
        # The folder may have moved since: trust where it is now.
        d["results"], d["name"] = str(Path(exp_dir).resolve().parent), Path(exp_dir).resolve().name
        try:
            settings = cls(**d)
            # The space and first points are checked as a --space file would be, so a
            # damaged file stops here rather than after Ray has started.
            # An experiment begun before `crop` existed has no entry for it.
            unsaved = {k: {"choices": [v]} for k, v in UNSAVED_DEFAULTS.items()}
            settings.space = validate_space({**unsaved, **settings.space}, where="space")
            missing = [n for n in SEARCHABLE if n not in settings.space]
            if missing:
                raise ConfigError(f"space: no entry for {', '.join(missing)}")
            if not all(isinstance(p, dict) for p in settings.enqueue):
                raise ConfigError("enqueue must be a list of configurations (mappings)")
            widen_for(settings.space, settings.enqueue)
        except (TypeError, ValueError) as e:
            raise UserError(f"{path}: {e}") from None
        return settings
