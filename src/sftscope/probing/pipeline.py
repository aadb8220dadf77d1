"""`sftscope probe`: logit lens of the Base and each variant over the chosen data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sftscope import distributed
from sftscope.capture.batches import encode_texts, make_batches
from sftscope.data.prepare import prepare_dataset
from sftscope.errors import SftscopeError
from sftscope.models.loading import LoadedModel, load_pair
from sftscope.preflight import check_pair_run
from sftscope.probing.config import ProbeConfig
from sftscope.probing.logit_lens import lens_batch, predicted_positions
from sftscope.results.rundir import RunDir
from sftscope.results.schema import MODE_ALIGNMENT, Row, Tables
from sftscope.stats.uncertainty import cluster_ratio_interval

TABLE = Tables.PROBE


def _probe_batch(models: list[LoadedModel], batch, chunk: int, num_layers: int):
    """One batch through every model: (lens sums [3, L+1] per model, Base-vs-variant top-1 matches [L+1] per
    variant, correct predictions per layer and sample [L+1, B] per model, predicted tokens per sample [B], N)."""
    valid, labels = (t.cpu() for t in predicted_positions(batch))  # top-1 ids come back on the CPU
    sample_of = valid.nonzero(as_tuple=True)[0]  # the sample of each predicted position, in lens_batch's order
    sums, hits, top1, n = {}, {}, {}, 0
    for m in models:
        correct, loss, kl, top1[m.name], n = lens_batch(m, batch, chunk)
        sums[m.name] = torch.stack([correct, loss, kl])
        hits[m.name] = torch.zeros(num_layers, valid.shape[0], dtype=torch.float64).index_add_(
            1, sample_of, (top1[m.name] == labels[None]).double())
    agree = {m.name: (top1[m.name] == top1["base"]).sum(-1).double() for m in models[1:]}
    return sums, agree, hits, valid.sum(1).double(), n


def probe_dataset(models: list[LoadedModel], texts: list[str], ids: list[str], dataset: str,
                  cfg: ProbeConfig) -> list[Row]:
    """Logit-lens rows for every model and layer, plus Base-vs-variant top-1 agreement per layer.

    lens_accuracy rows carry a 95% interval (ci_low, ci_high) from `cfg.bootstrap` resamples of the samples
    (each sample's tokens move together: `cluster_ratio_interval`), the same resamples for every layer."""
    tok = models[0].tokenizer  # the pair check guarantees identical token ids
    batches = list(make_batches(encode_texts(ids, texts, tok, cfg.max_length), cfg.batch_size, tok.pad_token_id))
    num_layers = models[0].parts.num_layers + 1
    # several processes: each runs a contiguous share of the batches; the per-batch results are gathered and
    # added up in batch order, as one process adds them
    start, stop = distributed.shard_bounds(len(batches))
    mine = {}
    for b in tqdm(range(start, stop), desc=f"probe {'+'.join(m.name for m in models)} x {dataset}", unit="batch"):
        mine[b] = _probe_batch(models, batches[b], cfg.chunk, num_layers)
    per_batch = distributed.gather_dict(mine)
    sums = {m.name: torch.zeros(3, num_layers, dtype=torch.float64) for m in models}
    agree = {m.name: torch.zeros(num_layers, dtype=torch.float64) for m in models[1:]}
    per_sample = {m.name: [] for m in models}  # correct predictions per layer and sample, [L+1, B] per batch
    sample_tokens = []
    tokens = 0
    for b in range(len(batches)):
        batch_sums, batch_agree, batch_hits, batch_tokens, n = per_batch[b]
        for name in sums:
            sums[name] += batch_sums[name]
            per_sample[name].append(batch_hits[name])
        for name in agree:
            agree[name] += batch_agree[name]
        sample_tokens.append(batch_tokens)
        tokens += n
    if tokens == 0:
        raise SftscopeError(f"{dataset!r} has no sample with two or more tokens: nothing to predict")
    rows = []
    # samples in the data set's order (batches are sorted by length): the resamples do not depend on batching
    position = {sample: i for i, sample in enumerate(ids)}
    order = np.argsort([position[s] for b in batches for s in b.sample_ids], kind="stable")
    counts = torch.cat(sample_tokens).numpy()[order]
    for name, (correct, loss, kl) in sums.items():
        ci = None
        if cfg.bootstrap and (counts > 0).sum() >= 2:
            ci = cluster_ratio_interval(torch.cat(per_sample[name], 1).numpy()[:, order], counts, cfg.bootstrap,
                                        seed=cfg.seed)
        for layer in range(num_layers):
            for metric, total in (("lens_accuracy", correct), ("lens_loss", loss), ("lens_kl_to_final", kl)):
                extra = {}
                if metric == "lens_accuracy" and ci is not None:
                    extra = {"ci_low": float(ci[0][layer]), "ci_high": float(ci[1][layer]), "ci_level": 0.95,
                             "ci_boot": cfg.bootstrap, "samples": int((counts > 0).sum())}
                rows.append(Row(side=name, dataset=dataset, layer=layer, metric=metric,
                                value=float(total[layer] / tokens), n=tokens, extra=extra))
    for name, matches in agree.items():
        rows += [Row(side=name, dataset=dataset, layer=layer, metric="lens_top1_agreement", mode=MODE_ALIGNMENT,
                     value=float(matches[layer] / tokens), n=tokens) for layer in range(num_layers)]
    return rows


def run_probe(cfg: ProbeConfig, out: str | Path) -> RunDir:
    """Run (or resume) the logit lens of every model on every data set into `out`; returns the run directory.

    Raises:
        SftscopeError: bad data sets, models that cannot be loaded or compared, or a different config in `out`.
    """
    refs, configs = check_pair_run(cfg, out)
    datasets = [prepare_dataset(d, cfg.data_dir, cfg.seed, cfg.samples, cfg.samples, cfg.text_field)
                for d in cfg.data]
    run = RunDir(out)
    run.bind_config("probe", cfg.identity())
    pending = [p for p in datasets if not run.is_done(TABLE, p.name)]
    if pending:
        models = load_pair(refs, cfg.load_options(), configs)
        run.write_environment(cfg.seed, [m.record for m in models])
        for prepared in pending:
            texts = [prepared.spec.render(r) for r in prepared.records]
            run.write_unit(TABLE, prepared.name, probe_dataset(models, texts, prepared.ids, prepared.name, cfg))
    if cfg.plots:
        from sftscope.report.plots.stages import plot_probe
        plot_probe(run.read_table(TABLE), run.figures)
    return run
