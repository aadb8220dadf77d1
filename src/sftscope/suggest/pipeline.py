"""`sftscope suggest`: measure training-free layer profiles, choose the blocks to tune, save both.

Writes into the output directory: the `suggest` table (every profile value per layer, tidy rows) and
suggestion.json (the chosen blocks as mask / depth range / layer list, with the evidence). The report reads both.
"""

from __future__ import annotations

import json
from pathlib import Path

from sftscope import distributed
from sftscope.data.prepare import prepare_dataset
from sftscope.models.loading import load_model
from sftscope.preflight import check_pair_run
from sftscope.results.rundir import RunDir, write_json
from sftscope.results.schema import (
    MODE_ALIGNMENT,
    MODE_VALUE,
    SUGGESTION_FILE,
    Row,
    Tables,
)
from sftscope.suggest.config import SuggestConfig
from sftscope.suggest.decide import LayerProfiles, Suggestion, suggest_blocks
from sftscope.suggest.measure import (
    average_profiles,
    block_weight_change,
    dataset_profiles,
)

TABLE = Tables.SUGGEST
# profile name -> (table metric, mode, layer offset): blocks b are written as layer b + 1 like the weights table
_PROFILE_ROWS = {"layer_cka": ("consecutive_layer_cka", MODE_VALUE, 1), "effective_rank": ("effective_rank", MODE_VALUE, 0),
                 "lens_accuracy": ("lens_accuracy", MODE_VALUE, 0), "variant_cka": ("cka", MODE_ALIGNMENT, 0),
                 "weight_change": ("block_delta_fro", MODE_ALIGNMENT, 1)}


def profile_rows(profiles: LayerProfiles, side: str = "base", variant: str = "sft", dataset: str = "") -> list[Row]:
    """Tidy rows of every profile: blocks as layer b + 1 (the weights table's convention), layers as is; the
    profiles with an interval (lens_accuracy, cka) carry it as ci_low / ci_high."""
    rows = []
    for name, (metric, mode, offset) in _PROFILE_ROWS.items():
        values = getattr(profiles, name)
        if values is None:
            continue
        who = variant if mode == MODE_ALIGNMENT else side
        ci = getattr(profiles, f"{name}_ci", None)
        rows += [Row(side=who, dataset=dataset, layer=i + offset, metric=metric, value=float(v), n=0, mode=mode,
                     preset="canonical" if name == "effective_rank" else "",
                     extra={} if ci is None else {"ci_low": float(ci[0, i]), "ci_high": float(ci[1, i]),
                                                  "ci_level": 0.95})
                 for i, v in enumerate(values)]
    return rows


def read_suggestion(run: RunDir) -> Suggestion:
    """The suggestion a `suggest` run wrote into `run` (suggestion.json)."""
    return Suggestion.from_dict(json.loads((run.path / SUGGESTION_FILE).read_text()))


def _run_suggest(cfg: SuggestConfig, out: str | Path) -> RunDir:
    refs, configs = check_pair_run(cfg, out)
    datasets = [prepare_dataset(d, cfg.data_dir, cfg.seed, cfg.samples, cfg.samples, cfg.text_field)
                for d in cfg.data]
    run = RunDir(out)
    run.bind_config("suggest", cfg.identity())
    if run.is_done(TABLE, "profiles") and (run.path / SUGGESTION_FILE).exists():  # resume: same config, done
        return run
    options = cfg.load_options()
    models = [load_model(r, options, c) for r, c in zip(refs, configs)]
    run.write_environment(cfg.seed, [m.record for m in models])
    base, variant = models[0], (models[1] if len(models) > 1 else None)
    per_dataset = [dataset_profiles(base, p, cfg.max_length, cfg.batch_size, variant, cfg.bootstrap, cfg.seed)
                   for p in datasets]
    weights = block_weight_change(refs[0], refs[1], base.parts.num_layers) if variant is not None else None
    profiles = average_profiles(per_dataset, weights)
    suggestion = suggest_blocks(profiles, cfg.k)
    run.write_unit(TABLE, "profiles", profile_rows(profiles, dataset="+".join(p.name for p in datasets)))
    write_json(run.path / SUGGESTION_FILE, {**suggestion.as_dict(), "data": [p.name for p in datasets],
                                            "base": cfg.base, "sft": cfg.sft})
    return run


def run_suggest(cfg: SuggestConfig, out: str | Path) -> RunDir:
    """Measure profiles (Base, and the SFT if given), choose blocks, write the table and suggestion.json
    (`read_suggestion(run)` reads it back).

    Raises:
        SftscopeError: bad data sets, models that cannot be loaded or compared, or a different config in `out`.

    Under torchrun / accelerate launch rank 0 does the work (nothing here splits across processes)."""
    return distributed.on_main(lambda: _run_suggest(cfg, out))
