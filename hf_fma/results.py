"""The study's results table: AST and CNN runs side by side, mean and standard deviation over seeds.

    hf-fma table runs/ast-small-seed* runs/cnn-small-seed* --output_dir results
    hf-fma table runs/study                      # a folder of run folders works too
    hf-fma table runs/ --published               # beside the study's published numbers (hf_fma.published)

`table` reads run folders written by the training recipes (hf_fma.runs.Run) and puts AST and CNN runs
side by side in the study's layout (model, features, dataset, training tracks, accuracy), with the mean and
standard deviation over the runs that differ only in their seed: single runs on small data vary a lot.
Multi-label runs (hf_fma.multi_label) have no accuracy: they get a table of their own, of test mAP.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from hf_fma.argparsing import ArgumentParser
# importing plots does not import matplotlib.
from hf_fma.plots import metric_title
from hf_fma.published import published_markdown
from hf_fma.runs import Run, find_runs

DEFAULT_TABLE_METRIC = "test_track_accuracy"
# A run's task (`Run.task`) -> the metric its table reports unless one is asked for.
DEFAULT_TABLE_METRICS = {"single_label": DEFAULT_TABLE_METRIC, "multi_label": "test_track_map"}
TASK_TITLES = {"single_label": "Single-label runs (one genre per track)", "multi_label": "Multi-label runs (all genres of a track)"}
TABLE_JSON_NAME = "results.json"
TABLE_MARKDOWN_NAME = "results.md"


@dataclass
class TableRow:
    """One line of the study's table: runs with the same set-up, their metric's mean and std over seeds."""

    model: str
    features: str
    dataset: str
    training_tracks: int | None
    mean: float
    std: float  # sample standard deviation over the runs; 0 for a single run
    values: list[float]
    seeds: list[int | None]
    runs: list[str]
    task: str = "single_label"
    metric: str = DEFAULT_TABLE_METRIC  # the all_results.json key of `values`

    @property
    def percent(self) -> str:
        """The metric in percent, "mean ± std" (the mean alone for one run)."""
        return f"{100 * self.mean:.1f}" + (f" ± {100 * self.std:.1f}" if len(self.values) > 1 else "")


def results_table(runs: Sequence[Run], metric: str | None = None) -> list[TableRow]:
    """Group runs by (task, model, features, dataset, training tracks) and summarise `metric` (default: the
    task's, DEFAULT_TABLE_METRICS) over each group.

    Rows are ordered by task, dataset, training tracks, then model, so AST and CNN of one set-up sit together.
    """
    groups: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        groups[(run.task, run.model, run.features, run.dataset, run.training_tracks)].append(run)
    rows = []
    for (task, model, features, dataset, tracks), members in groups.items():
        row_metric = metric or DEFAULT_TABLE_METRICS[task]
        values = [run.metric(row_metric) for run in members]
        seeds = [run.seed for run in members]
        repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1}, key=str)
        if repeated:
            raise ValueError(
                f"runs {', '.join(str(run.path) for run in members)} share model, features, dataset, training "
                f"tracks and seed {repeated}: a repeated run would count twice in the mean"
            )
        rows.append(
            TableRow(
                model=model,
                features=features,
                dataset=dataset,
                training_tracks=tracks,
                mean=statistics.fmean(values),
                std=statistics.stdev(values) if len(values) > 1 else 0.0,
                values=values,
                seeds=seeds,
                runs=[str(run.path) for run in members],
                task=task,
                metric=row_metric,
            )
        )
    whole_split = float("inf")  # runs on the whole training split come after every subset of it
    return sorted(
        rows,
        key=lambda row: (list(DEFAULT_TABLE_METRICS).index(row.task), row.dataset, whole_split if row.training_tracks is None else row.training_tracks, row.model, row.features),
    )


def format_results_table(rows: Sequence[TableRow], metric: str | None = None, published: str = "") -> str:
    """The table as Markdown, one per task (each titled when there are both); values in percent, "mean ±
    std (n runs)"; then `published`, the published rows beside ours (`hf_fma.published.published_markdown`),
    when given."""
    tasks = [task for task in DEFAULT_TABLE_METRICS if any(row.task == task for row in rows)]
    tables = []
    for task in tasks:
        task_rows = [row for row in rows if row.task == task]
        title = [f"{TASK_TITLES[task]}:", ""] if len(tasks) > 1 else []
        tables.append("\n".join(title) + _task_table(task_rows, metric or task_rows[0].metric))
    return "\n".join(tables) + (f"\n{published}" if published else "")


def _task_table(rows: Sequence[TableRow], metric: str) -> str:
    lines = [
        f"| Model | Features | Dataset | Training tracks | {metric_title(metric)} | Runs |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        # No count recorded and no max_train_samples: the whole training split.
        tracks = f"{row.training_tracks:,}" if row.training_tracks is not None else "all"
        lines.append(f"| {row.model} | {row.features} | {row.dataset} | {tracks} | {row.percent} | {len(row.values)} |")
    return "\n".join(lines) + "\n"


def write_results_table(
    rows: Sequence[TableRow], output_dir: str | Path, metric: str | None = None, published: str = ""
) -> tuple[Path, Path]:
    """Write `results.md` (with `published`, see format_results_table) and `results.json` (the rows, read
    by `hf-fma plot sizes`; its `metric` is the rows' when they share one) into output_dir."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    markdown = output_dir / TABLE_MARKDOWN_NAME
    markdown.write_text(format_results_table(rows, metric, published), encoding="utf-8")
    table_json = output_dir / TABLE_JSON_NAME
    metrics = {row.metric for row in rows}
    metric = metric or (metrics.pop() if len(metrics) == 1 else None)
    table_json.write_text(json.dumps({"metric": metric, "rows": [asdict(row) for row in rows]}, indent=2), encoding="utf-8")
    return markdown, table_json


def _message(error: Exception) -> str:
    return str(error.args[0]) if isinstance(error, KeyError) else str(error)


def _published(rows: Sequence[TableRow], runs: Sequence[Run], metric: str | None) -> str:
    """The published rows beside our single-label runs: every published number is a top-genre accuracy,
    which a multi-label run does not measure."""
    metric = metric or DEFAULT_TABLE_METRIC
    single_label = [row for row in rows if row.task == "single_label"]
    return published_markdown(single_label, [run for run in runs if run.task == "single_label"], metric, metric_title(metric))


def table_main(argv: list[str] | None = None) -> int:
    """`hf-fma table RUN_DIRS... [--metric test_track_accuracy] [--output_dir DIR]`: print the results table
    (and write results.md and results.json into DIR)."""
    parser = ArgumentParser(
        prog="hf-fma table", description="Results table of AST and CNN runs, mean and std over seeds."
    )
    parser.add_argument("run_dirs", nargs="+", help="run folders, or folders of run folders")
    parser.add_argument(
        "--metric",
        help=f"key of all_results.json to report (default: {DEFAULT_TABLE_METRIC}, for multi-label runs "
        f"{DEFAULT_TABLE_METRICS['multi_label']}; e.g. test_clip_accuracy, test_track_macro_f1)",
    )
    parser.add_argument("--output_dir", help="also write results.md and results.json (for `hf-fma plot sizes`) here")
    parser.add_argument(
        "--published",
        action="store_true",
        help="also print the study's published results, labelled with their source, beside the runs that repeat them",
    )
    args = parser.parse_args(argv)
    try:
        runs = find_runs(args.run_dirs)
        rows = results_table(runs, args.metric)
        published = _published(rows, runs, args.metric) if args.published else ""
    except (FileNotFoundError, ValueError, KeyError) as error:
        print(f"hf-fma table: {_message(error)}", file=sys.stderr)
        return 2
    print(format_results_table(rows, args.metric, published), end="")
    if args.output_dir:
        for path in write_results_table(rows, args.output_dir, args.metric, published):
            print(path)
    return 0


__all__ = [
    "DEFAULT_TABLE_METRIC",
    "DEFAULT_TABLE_METRICS",
    "TableRow",
    "format_results_table",
    "results_table",
    "table_main",
    "write_results_table",
]
