"""The tidy long-format row every stage writes: one measured number per row."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

# Columns every table has, in this order; stage-specific columns (mask, seed, task, step, ci_low, ...) follow.
CORE_COLUMNS = ["run", "side", "dataset", "layer", "metric", "preset", "mode", "value", "n"]

# Reporting modes (PAPER.md): a side's own value, and the three Base-vs-variant views.
MODE_VALUE = "value"             # metric of one side (base or a variant)
MODE_SAMPLE_DIFF = "sample_diff"  # mean_i f(Z_i^variant) - f(Z_i^base)
MODE_DATASET_DIFF = "dataset_diff"  # f(P^variant) - f(P^base)
MODE_ALIGNMENT = "alignment"     # pair metric itself (CKA, cosine, mean shift)
MODE_DIAGNOSTIC = "diagnostic"   # counts a reader needs: truncated, skipped (with reason), non-finite values
MODE_ROBUSTNESS = "robustness"   # split-half test of a Base-vs-variant change against resampling noise
MODE_TASK = "task"               # a task score of one model side (evaluate, tune)
MODE_SWAP = "swap"               # a score of a Base/SFT hybrid
MODE_SUMMARY = "summary"         # a sweep configuration's score over seeds
MODE_ITEM = "item"               # one evaluation item's score of one model side (tune: column `item`)
MODES = (MODE_VALUE, MODE_SAMPLE_DIFF, MODE_DATASET_DIFF, MODE_ALIGNMENT, MODE_DIAGNOSTIC, MODE_ROBUSTNESS,
         MODE_TASK, MODE_SWAP, MODE_SUMMARY, MODE_ITEM)


class Tables:
    """Names of the tables a run folder holds (`<name>.parquet` and `<name>.csv`), one per stage output."""

    METRICS = "metrics"              # analyze
    PROBE = "probe"                  # probe
    SWAP = "swap"                    # swap
    WEIGHTS = "weights"              # weights
    CORRELATION = "correlation"      # correlate
    TASKS = "tasks"                  # evaluate
    SUGGEST = "suggest"              # suggest (profiles; the choice itself is suggestion.json)
    TUNING = "tuning"                # tune: training rows of a cell
    TUNE_EVAL = "tune_eval"          # tune: scores of the tuned model (and the Base's, unit "base")
    TUNE_ITEMS = "tune_items"        # tune: per-item scores behind tune_eval's item averages (mode "item")
    SWEEP_SUMMARY = "sweep_summary"  # sweep: per configuration over seeds

    @classmethod
    def all(cls) -> tuple[str, ...]:
        return tuple(v for k, v in vars(cls).items() if k.isupper())


SUGGESTION_FILE = "suggestion.json"  # suggest's choice of blocks, read by the report


@dataclass
class Row:
    """One measured value. `layer` is -1 where no layer applies; `extra` holds stage-specific columns."""

    side: str
    dataset: str
    layer: int
    metric: str
    value: float
    n: int
    preset: str = ""
    mode: str = MODE_VALUE
    run: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        # inf is a legitimate value (canonical condition number of a singular matrix); NaN never is.
        if not isinstance(self.value, (int, float)) or math.isnan(float(self.value)):
            raise ValueError(f"NaN value for {self.metric} at layer {self.layer}: skip it with a counted reason instead")
        d.update(extra)
        return d
