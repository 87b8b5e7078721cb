"""`hf-fma predict`'s output: a table, JSON lines or CSV, written as results arrive, and the `--output`
file that replaces an old one only once it holds a whole row. A multi-label model's rows also name the
genres it predicts (`FilePrediction.genres`, the scores at or above its threshold) before the top-k scores."""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from hf_fma.run_folder import new_file_mode
from hf_fma.track_windows import FilePrediction

OUTPUT_FORMATS = ("table", "jsonl", "csv")


def _ranked_cells(result: FilePrediction, top_k: int, digits: int) -> list[str]:
    """Genre and score for ranks 1 to top_k, blank where the result has none (errors)."""
    cells = []
    for rank in range(top_k):
        if rank < len(result.predictions):
            prediction = result.predictions[rank]
            cells += [prediction["label"], f"{prediction['score']:.{digits}f}"]
        else:
            cells += ["", ""]
    return cells


def _csv_header(top_k: int, threshold: float | None = None) -> list[str]:
    ranked = [column for rank in range(1, top_k + 1) for column in (f"genre_{rank}", f"score_{rank}")]
    return ["file", "duration", "windows", *(["genres"] if threshold is not None else []), *ranked, "error", "warning"]


def _csv_row(result: FilePrediction, top_k: int, threshold: float | None = None) -> list[Any]:
    duration = "" if result.duration is None else result.duration
    # Genre titles hold commas and slashes ("Old-Time / Historic"), never a semicolon.
    genres = [";".join(result.genres or ())] if threshold is not None else []
    ranked = _ranked_cells(result, top_k, digits=4)
    return [result.file, duration, result.windows, *genres, *ranked, result.error or "", result.warning or ""]


def format_table(results: Sequence[FilePrediction], top_k: int, threshold: float | None = None) -> str:
    """Aligned columns: file, seconds, windows, (a multi-label model's predicted genres, whose `threshold`
    the header gives), then genre and score per rank; errors and warnings last."""
    header = ["file", "seconds", "windows"]
    if threshold is not None:
        header.append(f"genres (score >= {threshold:.4f})")
    for rank in range(1, top_k + 1):
        header += [f"genre {rank}", "score"]
    header.append("note")
    rows = []
    for result in results:
        row = [result.file, f"{result.duration:.1f}", str(result.windows)] if result.ok else [result.file, "-", "-"]
        if threshold is not None:
            row.append(", ".join(result.genres) or "(none)" if result.genres is not None else "")
        row += _ranked_cells(result, top_k, digits=3)
        row.append(f"error: {result.error}" if result.error else f"warning: {result.warning}" if result.warning else "")
        rows.append(row)
    first_score = 4 if threshold is None else 5
    numeric = {1, 2, *range(first_score, first_score + 2 * top_k - 1, 2)}  # right-aligned: seconds, windows, scores
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [
            cell.rjust(width) if column in numeric else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def write_predictions(
    results: Iterable[FilePrediction], stream: TextIO, output_format: str, top_k: int, threshold: float | None = None
) -> list[FilePrediction]:
    """Write results as a table, JSON lines or CSV. JSON lines and CSV rows go out as each result arrives,
    each followed by a flush (a long run's output survives an interruption); the table waits for all to
    align its columns, or for an interruption (Ctrl-C, an error) to print the rows finished before it.
    threshold: a multi-label model's, whose predicted genres (`genres`) get a column of the table and CSV
    (and JSON lines a `genres` field). Returns the results."""
    if output_format not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r}; valid formats: {', '.join(OUTPUT_FORMATS)}")
    written = []
    writer = csv.writer(stream) if output_format == "csv" else None
    if writer:
        writer.writerow(_csv_header(top_k, threshold))
    try:
        for result in results:
            written.append(result)
            if output_format == "jsonl":
                stream.write(json.dumps(dict(result), ensure_ascii=False) + "\n")
            elif writer:
                writer.writerow(_csv_row(result, top_k, threshold))
            stream.flush()
    finally:
        if output_format == "table" and written:
            stream.write(format_table(written, top_k, threshold))
            stream.flush()
    return written


class OutputFile:
    """The `--output` file, written as a temporary file beside it (same folder, so the rename is atomic,
    with the permissions a plain `open` would give it) that takes the file's name at the first flush
    after a row, i.e. as soon as it holds one whole row; later rows are written to it in place. Until
    then the old file is kept; closed without a row (an interrupt before the first file finished), the
    temporary file is deleted and the old one stays. Two runs writing the same file each replace it whole
    instead of interleaving or truncating each other."""

    def __init__(self, path: Path, output_format: str):
        self.path = path
        self.stream = tempfile.NamedTemporaryFile(
            "w", dir=path.parent, prefix=f".{path.name}.", suffix=".partial", delete=False,
            newline="" if output_format == "csv" else None, encoding="utf-8",
        )
        self.name = self.stream.name
        self.holds_rows = False  # a flush after a row has put it in place of `path`
        os.chmod(self.name, new_file_mode())

    def write(self, text: str) -> int:
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()
        if not self.holds_rows:
            os.replace(self.name, self.path)
            self.holds_rows = True

    def close(self) -> None:
        self.stream.close()
        if not self.holds_rows:
            os.unlink(self.name)


__all__ = ["OUTPUT_FORMATS", "OutputFile", "format_table", "write_predictions"]
