"""Compare the tables of two run folders (e.g. `sftscope demo --quick` before and after a change).

Every table present in both is joined on its key columns (everything that is not a value, an interval, a count or
free text); the script prints per table the rows on each side, the rows that joined, keys found on one side only,
and the largest absolute difference of value, n, ci_low, ci_high and p_value (with the count of NaN mismatches).
Tables written before the `blocks` column (spec / mask / preset of tuning rows) are mapped onto it.

Usage: python scripts/compare_runs.py BEFORE_DIR AFTER_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

TABLES = ["metrics", "probe", "weights", "correlation", "swap", "suggest", "tasks", "sweep/tuning", "sweep/tune_eval",
          "sweep/tune_items", "sweep/sweep_summary"]
VALUES = {"value", "n", "std", "ci_low", "ci_high", "t", "p_value", "cross_mean", "null_mean", "base_norm", "numel",
          "trainable_params", "base_value", "ci_boot", "n_splits", "ci_level", "seeds", "stderr"}
FREE_TEXT = {"run", "reason", "note", "extra"}
COMPARED = ("value", "n", "ci_low", "ci_high", "p_value")


def _keys(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    return frame[columns].apply(lambda column: column.map(repr)).agg("|".join, axis=1)


def compare(before: Path, after: Path, table: str) -> str:
    """One line (plus examples of unmatched keys) comparing `table` in two run folders."""
    fb, fa = before / f"{table}.parquet", after / f"{table}.parquet"
    if not (fb.exists() and fa.exists()):
        return f"{table}: only in {'after' if fa.exists() else 'before'}" if fb.exists() or fa.exists() else ""
    b, a = pd.read_parquet(fb), pd.read_parquet(fa)
    if "spec" in b.columns and "blocks" not in b.columns:  # older tuning rows: spec / mask / preset -> blocks
        b = b.assign(blocks=b["spec"]).drop(columns=[c for c in ("spec", "mask") if c in b.columns])
        if "preset" in a.columns and (a["preset"].fillna("") == "").all():
            b, a = b.drop(columns=["preset"]), a.drop(columns=["preset"])
    keys = [c for c in b.columns if c in a.columns and c not in VALUES and c not in FREE_TEXT]
    b, a = b.assign(_key=_keys(b, keys).values), a.assign(_key=_keys(a, keys).values)
    only_b, only_a = set(b["_key"]) - set(a["_key"]), set(a["_key"]) - set(b["_key"])
    joined = b.merge(a, on="_key", suffixes=("_b", "_a"))
    worst = {}
    for column in COMPARED:
        if f"{column}_b" in joined and f"{column}_a" in joined:
            x = pd.to_numeric(joined[f"{column}_b"], errors="coerce")
            y = pd.to_numeric(joined[f"{column}_a"], errors="coerce")
            both = ~(x.isna() & y.isna())
            worst[column] = (float((x - y).abs()[both].max()) if both.any() else 0.0, int((x.isna() ^ y.isna()).sum()))
    lines = [f"{table}: rows before {len(b)} after {len(a)} joined {len(joined)} | only before {len(only_b)} "
             f"only after {len(only_a)} | max|diff| (value, NaN mismatches) {worst}"]
    lines += [f"   only before, e.g. {sorted(only_b)[:3]}"] if only_b else []
    lines += [f"   only after, e.g. {sorted(only_a)[:3]}"] if only_a else []
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[-1])
    before, after = Path(sys.argv[1]), Path(sys.argv[2])
    for table in TABLES:
        line = compare(before, after, table)
        if line:
            print(line)


if __name__ == "__main__":
    main()
