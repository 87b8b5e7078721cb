"""FMA as a Hub-ready Parquet dataset: what `load_dataset("owner/fma", "small")` reads on every datasets version.

    hf-fma export fma_parquet --data_dir /data/fma --dataset_config_name small medium
    hf-fma push --dataset fma_parquet me/fma                      # then load_dataset("me/fma", "small")

    >>> from hf_fma.export import export_fma, read_export
    >>> export_fma("fma_parquet", ["small"], data_dir="/data/fma")
    >>> [(config.name, config.num_examples) for config in read_export("fma_parquet")]

Layout, as `Dataset.push_to_hub` writes a config (so the Hub's viewer and `load_dataset` find it through the
card's `configs:`): `OUT/{config}/{split}-{index:05d}-of-{count:05d}.parquet`, splits `train`, `validation`,
`test` (the official ones), shards of about `max_shard_size` (500 MB). The rows are the builder's
(`hf_fma.hf_fma.Fma`: every column, the track's licence included), the audio column holds each MP3's
bytes exactly as the archive has them (never decoded or re-encoded) and its file name. The dataset card,
README.md, is written from the folder's own files by `dataset_card` (`hf-fma export` writes it after the
shards; `hf-fma push --dataset` renders it again for the repository).

Why not `Dataset.to_parquet` or `push_to_hub`: files written by datasets >= 4 name their list features
`List`, a feature type datasets 3 does not know, so datasets 3.6 cannot read them. This module writes
the features in datasets 3's spelling (`Sequence`), which datasets 3.6, 4 and 5 all read as the same
Arrow list, whatever version runs the export.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
from datasets.info import DatasetInfosDict
from datasets.table import embed_table_storage
from datasets.utils.py_utils import convert_file_size_to_int
from datasets.utils.tqdm import tqdm  # off when datasets' bars are (HF_DATASETS_DISABLE_PROGRESS_BARS)
from huggingface_hub import DatasetCard, DatasetCardData

from hf_fma.argparsing import ArgumentParser
from hf_fma.cards import render_template
from hf_fma.data import DATASET_CONFIGS, DEMO_SCHEMA_KEY, is_demo_data, is_demo_schema, load_fma
from hf_fma.hf_fma import Fma
from hf_fma.hub_checks import HubError, check_repo_id
from hf_fma.metadata import KNOWN_BAD_TRACK_IDS, SPLIT_NAMES

DEFAULT_MAX_SHARD_SIZE = "500MB"
SPLITS = tuple(SPLIT_NAMES.values())  # train, validation, test
# Rows per Parquet row group: datasets 3.6's own choice for audio (PARQUET_ROW_GROUP_SIZE_FOR_AUDIO_DATASETS),
# about 100 MB of 30 s MP3s, so that a reader (the Hub's viewer, a streaming loader) fetches little at a time.
ROWS_PER_ROW_GROUP = 100
DATASET_CARD_TEMPLATE = "dataset_card.md"


def shard_file_name(split: str, index: int, count: int) -> str:
    """`train-00000-of-00003.parquet`: `push_to_hub`'s names, which the card's `{split}-*` patterns match."""
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


# ----------------------------------------------------------------------------------------------------
# Features every datasets version reads
# ----------------------------------------------------------------------------------------------------


def _refuse_list_of_structs(is_struct: bool, where: Any) -> None:
    # datasets 3 makes a Sequence of a dict a dict of lists, another Arrow type: only lists of other
    # features (all the builder has) mean the same under both names.
    if is_struct:
        raise ValueError(f"a list of structs ({where}) has no form that datasets 3 and 4+ both read")


def portable_features_dict(features: datasets.Features) -> dict[str, Any]:
    """`features.to_dict()` in the form datasets 3.6, 4 and 5 all read: list features as `Sequence`."""

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        value = {key: convert(item) for key, item in value.items()}
        if value.get("_type") == "List":
            _refuse_list_of_structs("_type" not in value["feature"], value)  # a struct is a plain dict
            value["_type"] = "Sequence"
        return value

    return convert(features.to_dict())


def portable_yaml(card_metadata: Any) -> Any:
    """Card metadata (`dataset_info:` features) in the form every datasets version reads: datasets >= 4's
    `list: string` spelled `sequence: string`."""
    if isinstance(card_metadata, list):
        return [portable_yaml(item) for item in card_metadata]
    if not isinstance(card_metadata, dict):
        return card_metadata
    converted = {}
    for key, item in card_metadata.items():
        if key == "list":
            _refuse_list_of_structs(isinstance(item, list), card_metadata)  # a struct is a list of fields
            key = "sequence"
        converted[key] = portable_yaml(item)
    return converted


def portable_schema(features: datasets.Features, synthesized_demo: bool = False) -> pa.Schema:
    """The Arrow schema of `features` with its `huggingface` metadata (what `load_dataset` reads the
    features from) in the portable form, marked (DEMO_SCHEMA_KEY) when the rows are the synthesized demo's."""
    metadata = {"huggingface": json.dumps({"info": {"features": portable_features_dict(features)}})}
    if synthesized_demo:
        metadata[DEMO_SCHEMA_KEY] = b"true"
    return features.arrow_schema.with_metadata(metadata)


# ----------------------------------------------------------------------------------------------------
# Writing
# ----------------------------------------------------------------------------------------------------


def _audio_sizes(split: datasets.Dataset) -> list[int]:
    """Bytes of each row's audio file: what its row weighs in a shard (the other columns are a few
    hundred bytes)."""
    return [os.path.getsize(audio["path"]) for audio in split.with_format("arrow")["audio"].to_pylist()]


def _write_split(
    split: datasets.Dataset, name: str, folder: Path, max_shard_bytes: int, synthesized_demo: bool, bar: tqdm
) -> list[Path]:
    """Write one split as contiguous shards of about max_shard_bytes, audio bytes embedded; `bar` counts
    the tracks written."""
    total = sum(_audio_sizes(split))
    count = max(1, math.ceil(total / max_shard_bytes))
    schema = portable_schema(split.features, synthesized_demo)
    source_metadata = split.features.arrow_schema.metadata  # what embed_table_storage reads the features from
    written = []
    for index in range(count):
        shard = split.shard(num_shards=count, index=index, contiguous=True)
        path = folder / shard_file_name(name, index, count)
        with pq.ParquetWriter(path, schema) as writer:
            for table in shard.with_format("arrow").iter(batch_size=ROWS_PER_ROW_GROUP):
                # Reads each MP3 file into the audio column's `bytes` (as push_to_hub does), path -> file name.
                table = embed_table_storage(table.replace_schema_metadata(source_metadata))
                writer.write_table(table.cast(schema), row_group_size=ROWS_PER_ROW_GROUP)
                bar.update(table.num_rows)
        written.append(path)
    return written


def export_fma(
    out_dir: str | os.PathLike,
    config_names: Sequence[str],
    data_dir: str | os.PathLike | None = None,
    max_shard_size: int | str = DEFAULT_MAX_SHARD_SIZE,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict[str, dict[str, list[Path]]]:
    """Write each config of `config_names` into `out_dir/{config}/` as Parquet shards (see the module
    docstring) and return {config: {split: [shard paths]}}.

    data_dir: the FMA archives or their extracted folders (as for the builder); None downloads them.
    max_shard_size: bytes per shard, an int or a string such as "500MB".
    progress: a bar per config of the tracks written, on stderr (preparing a config has datasets' own bars).
    A config folder that already exists is an error: the export never mixes shards of two runs. Each
    config is written into `{config}.partial/` and renamed when complete, so an interrupted export
    leaves no folder that looks finished. A README.md in a folder that holds no earlier export is
    someone's own card, which the export's card (`hf-fma export` writes it next) would replace: an error,
    before anything is written.
    """
    unknown = [name for name in config_names if name not in DATASET_CONFIGS]
    if unknown or not config_names:
        raise ValueError(f"unknown FMA config(s) {', '.join(unknown) or '(none given)'}; valid: {', '.join(DATASET_CONFIGS)}")
    max_shard_bytes = convert_file_size_to_int(max_shard_size)
    if max_shard_bytes <= 0:
        raise ValueError(f"max_shard_size must be positive, got {max_shard_size!r}")
    out_dir = Path(out_dir)
    existing = [name for name in config_names if (out_dir / name).exists()]
    if existing:
        raise FileExistsError(
            f"{out_dir} already holds {', '.join(existing)}: delete that folder to export the config again"
        )
    card = out_dir / "README.md"
    if card.exists() and not any(next((out_dir / name).glob("*.parquet"), None) for name in DATASET_CONFIGS):
        raise FileExistsError(
            f"{card} was not written by hf-fma export (the folder holds no export) and the export's dataset card "
            "would replace it: move it away, or export into another folder, then add its text to the new card"
        )
    exported = {}
    synthesized_demo = is_demo_data(data_dir)
    for name in config_names:
        splits = load_fma(name, data_dir=data_dir, cache_dir=cache_dir)  # the training recipes' cache too
        partial = out_dir / f"{name}.partial"
        if partial.exists():
            shutil.rmtree(partial)  # left by an interrupted export
        partial.mkdir(parents=True)
        total = sum(len(splits[split]) for split in SPLITS)
        with tqdm(total=total, desc=f"exporting {name}", unit="track", disable=not progress) as bar:
            files = {
                split: _write_split(splits[split], split, partial, max_shard_bytes, synthesized_demo, bar)
                for split in SPLITS
            }
        partial.rename(out_dir / name)
        exported[name] = {split: [out_dir / name / path.name for path in paths] for split, paths in files.items()}
    return exported


# ----------------------------------------------------------------------------------------------------
# Reading an export back (for its card and its checks)
# ----------------------------------------------------------------------------------------------------


@dataclass
class ExportedSplit:
    files: list[Path]
    num_examples: int
    num_bytes: int  # uncompressed, as `dataset_info` counts it
    file_bytes: int  # on disk


@dataclass
class ExportedConfig:
    """One config of an export, read from its Parquet files' footers (and licence column)."""

    name: str
    features: datasets.Features
    splits: dict[str, ExportedSplit]
    licenses: Counter = field(default_factory=Counter)  # licence -> tracks ("" for tracks without one)
    synthesized_demo: bool = False  # exported from `hf-fma make-demo`'s archives (DEMO_SCHEMA_KEY)

    @property
    def num_examples(self) -> int:
        return sum(split.num_examples for split in self.splits.values())

    def data_files(self) -> list[dict[str, str]]:
        """The card's `configs:` entry: a `{config}/{split}-*` pattern per split."""
        return [{"split": split, "path": f"{self.name}/{split}-*"} for split in self.splits]

    def dataset_info(self) -> datasets.DatasetInfo:
        split_dict = datasets.SplitDict()
        for name, split in self.splits.items():
            split_dict.add(datasets.SplitInfo(name=name, num_bytes=split.num_bytes, num_examples=split.num_examples))
        return datasets.DatasetInfo(
            config_name=self.name,
            features=self.features,
            splits=split_dict,
            download_size=sum(split.file_bytes for split in self.splits.values()),
            dataset_size=sum(split.num_bytes for split in self.splits.values()),
        )


def _read_split(files: list[Path]) -> tuple[ExportedSplit, Counter]:
    num_examples = num_bytes = 0
    licenses = Counter()
    for path in files:
        parquet = pq.ParquetFile(path)
        num_examples += parquet.metadata.num_rows
        num_bytes += sum(parquet.metadata.row_group(i).total_byte_size for i in range(parquet.metadata.num_row_groups))
        licenses.update(value or "" for value in parquet.read(columns=["license"]).column("license").to_pylist())
    return ExportedSplit(files, num_examples, num_bytes, sum(path.stat().st_size for path in files)), licenses


def read_export(out_dir: str | os.PathLike) -> list[ExportedConfig]:
    """The configs of an export folder, in the builder's config order."""
    out_dir = Path(out_dir)
    configs = []
    for name in DATASET_CONFIGS:
        files = {split: sorted((out_dir / name).glob(f"{split}-*.parquet")) for split in SPLITS}
        if not any(files.values()):
            continue
        missing = [split for split, paths in files.items() if not paths]
        if missing:
            raise FileNotFoundError(f"{out_dir / name} has no {', '.join(missing)} shards: export the config again")
        schema = pq.read_schema(files["train"][0])
        features = datasets.Features.from_arrow_schema(schema)
        splits, licenses = {}, Counter()
        for split, paths in files.items():
            splits[split], split_licenses = _read_split(paths)
            licenses += split_licenses
        configs.append(ExportedConfig(name, features, splits, licenses, is_demo_schema(schema)))
    if not configs:
        raise FileNotFoundError(
            f"{out_dir} holds no exported config (folders {', '.join(DATASET_CONFIGS)} of Parquet shards): "
            "write one with `hf-fma export`"
        )
    return configs


def export_files(out_dir: str | os.PathLike, configs: Iterable[ExportedConfig]) -> list[str]:
    """The export's files relative to out_dir, as a dataset repository holds them (card first)."""
    out_dir = Path(out_dir)
    return ["README.md"] + [
        path.relative_to(out_dir).as_posix() for config in configs for split in config.splits.values() for path in split.files
    ]


# ----------------------------------------------------------------------------------------------------
# The dataset card
# ----------------------------------------------------------------------------------------------------


def _feature_type(feature) -> str:
    """A short description of a `datasets` feature type for the card's table."""
    if isinstance(feature, datasets.ClassLabel):
        return "ClassLabel (genre names in alphabetical order)"
    if isinstance(feature, datasets.Audio):
        return "Audio (MP3 bytes and file name)"
    if hasattr(feature, "feature"):  # datasets 3's Sequence, 4's List
        return f"list of {_feature_type(feature.feature)}"
    if isinstance(feature, datasets.Value):
        return feature.dtype
    return type(feature).__name__


def _size_category(rows: int) -> str:
    """The Hub's `size_categories` value for a dataset of `rows` examples."""
    for limit, category in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return category
    return "1M<n<10M"


def dataset_card(export_dir: str | Path, repo_id: str | None = None, configs: list | None = None) -> DatasetCard:
    """The dataset card of a Parquet export of FMA (`hf-fma export`), from the export's own files: its
    configs and their Parquet files (`configs:`), features, split sizes and bytes (`dataset_info:`),
    labels and the tracks per licence.

    repo_id: the dataset repository the export is (to be) published as, shown in the usage snippet;
    by default the export folder's path, which `load_dataset` reads as it is.
    configs: the export's `read_export(export_dir)`, when the caller has it already (it reads every shard's
    licence column).
    """
    configs = read_export(export_dir) if configs is None else configs
    # A builder only to read its DatasetInfo; its cache folder (lock files) is thrown away.
    with tempfile.TemporaryDirectory() as cache_dir:
        info = Fma(config_name=configs[0].name, cache_dir=cache_dir).info
    # The rows say whether they are `hf-fma make-demo`'s (see DEMO_SCHEMA_KEY).
    demo = any(config.synthesized_demo for config in configs)
    card_data = DatasetCardData(
        pretty_name="Synthesized demo data in the layout of FMA (hf-fma make-demo)" if demo else "Free Music Archive (FMA)",
        # No single licence: every track carries its artist's (the `license` column), the metadata CC BY 4.0.
        license="other",
        license_name="creative-commons-per-track",
        license_link=info.homepage,
        task_categories=["audio-classification"],
        tags=["music", "music-genre-classification", "fma"] + (["synthetic"] if demo else []),
        size_categories=[_size_category(sum(config.num_examples for config in configs))],
        source_datasets=None if demo else ["original"],
        paperswithcode_id=None if demo else "fma",
        configs=[{"config_name": config.name, "data_files": config.data_files()} for config in configs],
    )
    DatasetInfosDict({config.name: config.dataset_info() for config in configs}).to_dataset_card_data(card_data)
    card_data.dataset_info = portable_yaml(card_data.dataset_info)  # readable by datasets 3.6 as well as 4+
    licenses = sum((config.licenses for config in configs), Counter())
    content = render_template(
        DATASET_CARD_TEMPLATE,
        card_data,
        pretty_name=card_data.pretty_name,
        repo_id=repo_id or str(export_dir),
        demo=demo,
        description=info.description.strip(),
        configs=[
            {
                "name": config.name,
                "genres": config.features["genre"].names,
                "splits": {name: split.num_examples for name, split in config.splits.items()},
            }
            for config in configs
        ],
        features=[(name, _feature_type(feature)) for name, feature in configs[0].features.items()],
        known_bad=[f"{track_id:06d}" for track_id in sorted(KNOWN_BAD_TRACK_IDS)],
        licenses=[(license or "(none given)", count) for license, count in licenses.most_common()],
        citation=info.citation.strip(),
        homepage=info.homepage,
    )
    return DatasetCard(content)


def write_dataset_card(export_dir: str | Path, repo_id: str | None = None, configs: list | None = None) -> Path:
    """(Re)write the export's README.md from its files; `repo_id` goes into the usage snippet. `configs`: see
    `dataset_card`."""
    path = Path(export_dir) / "README.md"
    dataset_card(export_dir, repo_id, configs).save(path)
    return path


# ----------------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------------


def _build_export_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="hf-fma export",
        description="Write FMA configs as a Hub-ready Parquet dataset (shards per split, MP3 bytes as they are, "
        "every track's licence) with its dataset card; `hf-fma push --dataset OUT REPO_ID` publishes it.",
    )
    parser.add_argument("output_dir", help="folder to write (one sub-folder per config, and README.md)")
    parser.add_argument(
        "--data_dir",
        help="folder with the FMA archives or their extracted folders (default: download the official archives)",
    )
    parser.add_argument(
        "--dataset_config_name", nargs="+", default=["small"], choices=DATASET_CONFIGS,
        metavar="CONFIG", help=f"configs to export, any of {', '.join(DATASET_CONFIGS)} (default: small)",
    )
    parser.add_argument(
        "--max_shard_size", default=DEFAULT_MAX_SHARD_SIZE,
        help=f"size of a Parquet shard, e.g. 500MB or 1GB (default: {DEFAULT_MAX_SHARD_SIZE})",
    )
    parser.add_argument("--repo_id", help="dataset repository the card's usage snippet names (default: the folder)")
    parser.add_argument("--cache_dir", help="datasets cache for the prepared configs (default: HF_DATASETS_CACHE)")
    return parser


def export_main(argv: list[str] | None = None) -> int:
    """`hf-fma export OUT --data_dir DIR --dataset_config_name small [medium ...]`: the Parquet shards of each
    config, then the card of everything the folder holds."""
    args = _build_export_parser().parse_args(argv)
    try:
        if args.repo_id:
            check_repo_id(args.repo_id)
        exported = export_fma(
            args.output_dir, args.dataset_config_name, data_dir=args.data_dir, max_shard_size=args.max_shard_size,
            cache_dir=args.cache_dir, progress=True,
        )
        card = write_dataset_card(args.output_dir, args.repo_id)
    except (HubError, FileNotFoundError, FileExistsError, ValueError) as error:
        print(f"hf-fma export: {error}", file=sys.stderr)
        return 2
    for name, splits in exported.items():
        print(f"{name}: " + ", ".join(f"{split} {len(files)} shard(s)" for split, files in splits.items()))
    print(f"wrote {card}; publish with: hf-fma push --dataset {args.output_dir} {args.repo_id or 'OWNER/NAME'}")
    return 0


__all__ = [
    "DEFAULT_MAX_SHARD_SIZE",
    "ExportedConfig",
    "ExportedSplit",
    "dataset_card",
    "export_files",
    "export_fma",
    "export_main",
    "portable_features_dict",
    "portable_schema",
    "portable_yaml",
    "read_export",
    "shard_file_name",
    "write_dataset_card",
]
