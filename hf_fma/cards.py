"""Model cards of training runs, from the templates in the repository's model_cards/ (shipped in the
package as hf_fma/model_cards, a link to it; `render_template` serves the dataset card of hf_fma.export too).

    >>> from hf_fma.cards import model_card, write_run_card
    >>> card = model_card("runs/ast-demo", repo_id="me/ast-fma-small")   # a huggingface_hub.ModelCard
    >>> card.data.to_dict()["model-index"]                                 # the metrics the Hub shows
    >>> write_run_card("runs/ast-demo")                                   # runs/ast-demo/README.md

Training writes the run folder's README.md (`write_run_card`), `hf-fma evaluate` and `hf-fma push` write it
again, and `hf-fma push` renders these into the repositories it publishes. A card is filled from what the run left
in its folder (see hf_fma.runs.Run): the dataset config and its splits, the features and their
normalisation, the hyper-parameters, the clip- and track-level test metrics of `evaluation_test.json`,
training time and hardware. Its metadata is a `ModelCardData` (`model-index` results, `datasets`,
`metrics`, `license`, `pipeline_tag: audio-classification`), so the Hub indexes the results. A multi-label
run's card (hf_fma.multi_label) says so, with its number of genres, and indexes mAP and micro-F1 at its saved
threshold instead of accuracy.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hf_fma.evaluation_report import evaluation_markdown, is_multi_label_evaluation
from hf_fma.geometry import SAMPLING_RATE, extractor_crop_frames
from hf_fma.run_folder import (
    LEARNING_CURVES_NAME,
    RUN_CONFIG_NAME,
    TRAINER_STATE_NAME,
    confusion_matrix_name,
    evaluation_json_name,
    read_json,
    write_text_atomic,
)
from hf_fma.runs import Run, dataset_title

TEMPLATES_DIR = Path(__file__).resolve().parent / "model_cards"
MODEL_CARD_TEMPLATES = {"AST": "ast_model_card.md", "CNN": "cnn_model_card.md", "LSTM": "lstm_model_card.md"}
# FMA's tracks are under their artists' Creative Commons licences, many non-commercial and share-alike:
# a permissive default would grant uses of the model that the audio it learned from does not allow.
DEFAULT_LICENSE = "cc-by-nc-sa-4.0"
# A model-index names its dataset by a `type`; FMA trained from the archives (no Hub dataset) goes by its
# Papers with Code id, and the card links FMA's own page. A run on the synthesized demo must not be
# indexed as FMA's.
FMA_DATASET_TYPE = "fma"
DEMO_DATASET_TYPE = "hf-fma-demo"
# Stands, in a published card's commands, for the reader's folders (the training machine's are not shown).
DATA_DIR_PLACEHOLDER = "DIR"


def render_template(template_name: str, card_data, **context: Any) -> str:
    """Render a card template with the card's YAML metadata as `card_data`, as `RepoCard.from_template`
    does, but through a loader: `from_template` renders a lone string, so the AST and CNN templates could
    not share the common sections of model_card.md through `{% extends %}`. Undefined names fail."""
    import jinja2  # a dependency of huggingface_hub's card templates (and of torch)

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # Markdown, not HTML
    )
    return environment.get_template(template_name).render(card_data=card_data.to_yaml(), **context)


# ----------------------------------------------------------------------------------------------------
# Model cards
# ----------------------------------------------------------------------------------------------------


def _count_parameters(weights: Path) -> int:
    """Parameters in a safetensors file, from its header (no tensor is loaded)."""
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="numpy") as tensors:
        for name in tensors.keys():
            count = 1
            for size in tensors.get_slice(name).get_shape():
                count *= size
            total += count
    return total


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "an unrecorded time"
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes // 60:.0f} h {minutes % 60:.0f} min"


def _base_model(run: Run) -> tuple[str | None, str | None]:
    """(Hub id of the checkpoint the run fine-tuned, description of its preset)."""
    from hf_fma.models.ast import AST_PRESETS

    name = run.model_name
    if run.family == "AST" and name in AST_PRESETS:
        return AST_PRESETS[name].checkpoint, AST_PRESETS[name].description
    if run.family == "AST" and "/" in name and not Path(name).exists():
        return name, None  # fine-tuned from a Hub checkpoint given by name
    return None, None


def _hyperparameters(config: Mapping[str, Any]) -> list[tuple[str, Any]]:
    names = [
        ("learning rate", "learning_rate"),
        ("batch size per device", "per_device_train_batch_size"),
        ("gradient accumulation steps", "gradient_accumulation_steps"),
        ("epochs", "num_train_epochs"),
        ("max steps", "max_steps"),
        ("weight decay", "weight_decay"),
        ("warm-up steps (a share of all steps when < 1)", "warmup_steps"),
        ("learning-rate schedule", "lr_scheduler_type"),
        ("optimizer", "optim"),
        ("label smoothing", "label_smoothing_factor"),
        ("early stopping patience", "early_stopping_patience"),
        ("bf16", "bf16"),
        ("fp16", "fp16"),
        ("seed", "seed"),
    ]
    # Unset switches and max_steps=-1 (train by epochs) say nothing; 0 (a seed) does.
    return [
        (label, config[key])
        for label, key in names
        if config.get(key) is not None and config[key] is not False and not (key == "max_steps" and config[key] < 0)
    ]


def _augmentation(config: Mapping[str, Any]) -> list[str]:
    steps = []
    if config.get("freq_mask") or config.get("time_mask"):
        steps.append(f"SpecAugment masks of up to {config.get('freq_mask', 0)} mel bins and {config.get('time_mask', 0)} frames")
    if config.get("mixup_prob"):
        alpha = config.get("mixup_alpha")
        steps.append(f"mixup on {100 * config['mixup_prob']:g}% of examples, Beta({alpha}, {alpha})")
    return steps


def _architecture(run: Run) -> dict[str, Any]:
    settings = dict(run.model_config)
    if run.family == "CNN":
        settings["blocks"] = list(zip(settings["hidden_sizes"], settings["kernel_sizes"], settings["pool_sizes"]))
    return settings


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def hub_dataset_id(run: Run) -> str | None:
    """The Hub dataset a run trained on: its `dataset_name` unless that is a local folder (an export on
    this machine), or not a repository id; None for runs on the archives (`data_dir`)."""
    from huggingface_hub.utils import validate_repo_id

    name = run.run_config.get("dataset_name")
    if not name or Path(name).expanduser().exists():
        return None
    try:
        validate_repo_id(name)
    except ValueError:  # HFValidationError
        return None
    return name


def shown_dataset_name(run: Run, published: bool) -> str | None:
    """The run's `dataset_name` as a card shows it; a published card names a local folder by its name only:
    the training machine's paths are not shown (its commands have DIR)."""
    name = run.run_config.get("dataset_name")
    if published and name and hub_dataset_id(run) is None:
        return Path(str(name)).name
    return name


def public_data_title(run: Run, published: bool) -> str:
    """`Run.data_title` with the dataset's name as the card shows it (`shown_dataset_name`)."""
    return dataset_title(shown_dataset_name(run, published), run.dataset_config, run.fma_data)


def other_dataset_flags(run: Run, placeholder: bool = False) -> list[str]:
    """The `hf-fma evaluate` flags that read a run's dataset other than FMA as its training did (its folder
    as DIR with `placeholder`)."""
    config = run.run_config
    flags = ["--dataset_name", DATA_DIR_PLACEHOLDER if placeholder else str(config["dataset_name"])]
    for key in ("audio_column_name", "label_column_name", "split_seed"):
        flags += [f"--{key}", str(config[key])]
    return flags


def reproduce_commands(run: Run, model_id: str, published: bool) -> dict[str, str]:
    """The card's commands that repeat the run and its test evaluation, with every option they need: the
    data, and the tracks the run's evaluation sampled (`max_eval_samples`, drawn with its seed). In the
    run folder's own card they run as written; a published card's have DIR for the reader's data folder
    (run_config.yaml is the repository's, without the training machine's paths)."""
    config = run.run_config
    data_dir = None if published else config.get("data_dir")
    data = ["--data_dir", data_dir or DATA_DIR_PLACEHOLDER]
    if not run.fma_data:  # another dataset: evaluate reads it as training did
        data = other_dataset_flags(run, published and hub_dataset_id(run) is None)
    train = ["hf-fma", "train", "run_config.yaml" if published else str(Path(model_id) / RUN_CONFIG_NAME)]
    if published and hub_dataset_id(run) is None:  # a published config keeps only a Hub dataset_name
        train += data[:2]
    train += ["--output_dir", "rerun"]  # never over the run itself
    evaluate = ["hf-fma", "evaluate", model_id, "--dataset_config_name", run.dataset_config, "--split", "test"]
    evaluate += ["--n_crops", str(require_test_evaluation(run)["n_crops"]), *data]
    if config.get("max_eval_samples") is not None and not config.get("streaming"):
        evaluate += ["--max_tracks", str(config["max_eval_samples"]), "--seed", str(config.get("seed", 0))]
    return {"train": shlex.join(train), "evaluate": shlex.join(evaluate), "data_dir_placeholder": DATA_DIR_PLACEHOLDER in train + evaluate}


def require_test_evaluation(run: Run) -> dict[str, Any]:
    """The run's test-split evaluation on the dataset config it trained on, which every card reports (never
    one of another config, see `Run.evaluation`); missing, the error says how to make it."""
    evaluation = run.evaluation("test")
    if evaluation is None:
        config = run.dataset_config
        raise FileNotFoundError(
            f"{run.path} has no test evaluation on {run.data_title} (neither {evaluation_json_name('test')} "
            f"nor {evaluation_json_name('test', config)}): the card reports the test metrics of the data the "
            f"run trained on; write them with `hf-fma evaluate {run.path} --dataset_config_name {config} --split test"
            + ("`" if run.fma_data else f" {shlex.join(other_dataset_flags(run))}`")
        )
    return evaluation


def _eval_results(run: Run, evaluation: Mapping[str, Any], dataset_id: str | None) -> list[EvalResult]:
    """The model-index results: accuracy and macro-F1 at track and clip level on the test split (a
    multi-label run: mAP at both levels and micro-F1 at its threshold at track level)."""
    demo = run.synthesized_demo
    # Hub metadata names a local folder of another dataset by the folder's name (the type too): never FMA.
    dataset_name = f"synthesized demo data in FMA {run.dataset}'s layout" if demo else public_data_title(run, True)
    if not run.fma_data:
        dataset_id = dataset_id or shown_dataset_name(run, published=True)

    def result(metric_type: str, value: float, level: str, label: str, metric_args=None) -> EvalResult:
        return EvalResult(
            task_type="audio-classification",
            task_name="Multi-label music genre classification" if is_multi_label_evaluation(evaluation) else "Music genre classification",
            dataset_type=dataset_id or (DEMO_DATASET_TYPE if demo else FMA_DATASET_TYPE),
            dataset_name=dataset_name,
            dataset_config=run.dataset_config,
            dataset_split="test",
            metric_type=metric_type,
            metric_value=round(value, 4),
            metric_args=metric_args or ({"average": "macro"} if metric_type == "f1" else None),
            metric_name=f"{label} ({level} level, {evaluation['n_crops']} crops of {evaluation['crop_seconds']:g} s)"
            if level == "track"
            else f"{label} ({level} level, {evaluation['crop_seconds']:g} s crops)",
        )

    track, clip = evaluation["track"], evaluation["clip"]
    if is_multi_label_evaluation(evaluation):
        # "map" and "f1" as the Hub's model-index names them; metric_args say how they are averaged.
        macro, micro = {"average": "macro"}, {"average": "micro", "threshold": round(track["threshold"], 4)}
        return [
            result("map", track["mean_average_precision"], "track", "Test mAP", macro),
            result("f1", track["micro_f1"], "track", "Test micro-F1", micro),
            result("map", clip["mean_average_precision"], "clip", "Test mAP", macro),
        ]
    return [
        result("accuracy", track["accuracy"], "track", "Test accuracy"),
        result("f1", track["macro_f1"], "track", "Test macro-F1"),
        result("accuracy", clip["accuracy"], "clip", "Test accuracy"),
        result("f1", clip["macro_f1"], "clip", "Test macro-F1"),
    ]


def _card_data(
    run: Run,
    evaluation: Mapping[str, Any],
    license: str,
    dataset_id: str | None,
    base_model: str | None,
    model_name: str,
) -> ModelCardData:
    """The card's YAML metadata, which the Hub indexes."""
    return ModelCardData(
        license=license,
        library_name="transformers",
        pipeline_tag="audio-classification",
        tags=["audio-classification", "music", "music-genre-classification", *(["fma"] if run.fma_data else []),
              "hf-fma", {"AST": "audio-spectrogram-transformer", "CNN": "cnn", "LSTM": "lstm"}[run.family]],
        datasets=[dataset_id] if dataset_id else None,
        metrics=["map", "f1", "roc_auc"] if is_multi_label_evaluation(evaluation) else ["accuracy", "f1"],
        base_model=base_model,
        model_name=model_name,
        eval_results=_eval_results(run, evaluation, dataset_id),
    )


def _headline(evaluation: Mapping[str, Any]) -> list[dict[str, str]]:
    track, clip = evaluation["track"], evaluation["clip"]
    if is_multi_label_evaluation(evaluation):
        return [
            {"name": "Test mAP, track level", "value": f"{track['mean_average_precision']:.3f}"},
            {"name": "Test mAP, clip level", "value": f"{clip['mean_average_precision']:.3f}"},
            {"name": f"Test micro-F1, track level (threshold {track['threshold']:.4f})", "value": f"{track['micro_f1']:.3f}"},
        ]
    return [
        {"name": "Test accuracy, track level", "value": _percent(track["accuracy"])},
        {"name": "Test accuracy, clip level", "value": _percent(clip["accuracy"])},
        {"name": "Test macro-F1, track level", "value": f"{track['macro_f1']:.3f}"},
    ]


def _dataset_section(run: Run, evaluation: Mapping[str, Any], dataset_id: str | None, published: bool) -> dict[str, Any]:
    config = run.run_config
    local = published and not run.fma_data and hub_dataset_id(run) is None
    return dict(
        id=dataset_id,
        config=run.dataset_config,
        demo=run.synthesized_demo,
        fma=run.fma_data,
        title=public_data_title(run, published),
        name=shown_dataset_name(run, published),
        load_name=DATA_DIR_PLACEHOLDER if local else config.get("dataset_name"),
        audio_column=config.get("audio_column_name", "audio"),
        label_column=config.get("label_column_name", "genre"),
        split_seed=config.get("split_seed", 0),
        made_splits=run.results.get("splits_made_from_train", []),
        train_tracks=run.training_tracks if run.training_tracks is not None else "all",
        validation_tracks=run.results.get("validation_tracks", "?"),
        test_tracks=evaluation["num_tracks"],
    )


def _features_section(run: Run) -> dict[str, Any]:
    """The feature extractor's settings as the card describes them: crop, fbank, pooling, MFCC, statistics."""
    features = run.feature_config
    frames, mel_bins = run.input_shape
    return dict(
        crop_seconds=f"{run.crop_seconds:g}",
        sampling_rate=features.get("sampling_rate", SAMPLING_RATE),
        num_mel_bins=features["num_mel_bins"],
        max_length=extractor_crop_frames(features),
        frequency_downscale=features.get("frequency_downscale", 1),
        time_downscale=features.get("time_downscale", 1),
        pooled=(features.get("frequency_downscale", 1), features.get("time_downscale", 1)) != (1, 1),
        bands=features["num_mel_bins"] // features.get("frequency_downscale", 1),
        num_mfcc=features.get("num_mfcc", 0),
        mfcc_delta_order=features.get("mfcc_delta_order", 0),
        frames=frames,
        mel_bins=mel_bins,
        mean=f"{features['mean']:.4f}",
        std=f"{features['std']:.4f}",
    )


def _training_section(run: Run) -> dict[str, Any]:
    trainer_state = _trainer_state(run.path)
    return dict(
        epochs=f"{trainer_state.get('epoch', run.results.get('epoch', 0)):g}",
        steps=trainer_state.get("global_step", "?"),
        runtime=_duration(run.results.get("train_runtime")),
        hardware=run.results.get("hardware") or run.run_config.get("hardware") or "unrecorded hardware",
    )


def _evaluation_section(evaluation: Mapping[str, Any]) -> dict[str, Any]:
    return dict(
        n_crops=evaluation["n_crops"],
        crop_seconds=f"{evaluation['crop_seconds']:g}",
        markdown=evaluation_markdown(evaluation, heading="###"),
    )


def model_card(
    run_dir: str | Path,
    repo_id: str | None = None,
    dataset_id: str | None = None,
    license: str = DEFAULT_LICENSE,
    figures: Mapping[str, str] | None = None,
    location: str | Path | None = None,
) -> ModelCard:
    """The model card of a finished run (AST or CNN template by the saved config's model_type).

    repo_id: where the model is (to be) published, used in the usage snippet and as the model-index name.
    location: without repo_id, the folder the snippet loads the model from (default: run_dir; training
        writes the card among its staged files, for the run folder they move into).
    dataset_id: the Hub dataset the run trained on (the card's `datasets`); by default the run's
    `dataset_name` when that is a Hub id, and none (FMA's own page is linked) for runs on the archives.
    license: the model's licence (default: DEFAULT_LICENSE, which the card explains).
    figures: {"learning_curves": file, "confusion_matrix": file} to show, relative to the card; by default
    the ones present in the run folder.
    """
    run = Run.load(run_dir)
    evaluation = require_test_evaluation(run)
    if figures is None:
        candidates = {"learning_curves": LEARNING_CURVES_NAME, "confusion_matrix": confusion_matrix_name("test")}
        figures = {key: name for key, name in candidates.items() if (run.path / name).is_file()}
    base_model, preset_description = _base_model(run)
    dataset_id = dataset_id or hub_dataset_id(run)
    model_id = repo_id or str(location or run.path)
    model_name = model_id.rstrip("/").split("/")[-1]
    features = run.feature_config
    context = dict(
        title=f"{run.family} music-genre classifier for {public_data_title(run, repo_id is not None)}"
        + (" trained on synthesized demo data" if run.synthesized_demo else "")
        + (f": {model_name}" if repo_id else ""),
        family=run.family,
        model_id=model_id,
        license=license,
        default_license=DEFAULT_LICENSE,
        reproduce=reproduce_commands(run, model_id, published=repo_id is not None),
        labels=evaluation["labels"],
        multi_label=is_multi_label_evaluation(evaluation),
        preset=run.model_name,
        preset_description=preset_description,
        base_model=base_model,
        parameters=f"{_count_parameters(run.path / 'model.safetensors'):,}",
        headline=_headline(evaluation),
        trust_remote_code="auto_map" in run.model_config or "auto_map" in features,
        trust_remote_code_extractor="auto_map" in features,
        architecture=_architecture(run),
        dataset=_dataset_section(run, evaluation, dataset_id, published=repo_id is not None),
        features=_features_section(run),
        augmentation=_augmentation(run.run_config),
        hyperparameters=_hyperparameters(run.run_config),
        training=_training_section(run),
        evaluation=_evaluation_section(evaluation),
        figures=dict(figures),
    )
    card_data = _card_data(run, evaluation, license, dataset_id, base_model, model_name)
    return ModelCard(render_template(MODEL_CARD_TEMPLATES[run.family], card_data, **context))


def write_run_card(
    run_dir: str | Path,
    repo_id: str | None = None,
    location: str | Path | None = None,
    dataset_id: str | None = None,
    license: str | None = None,
) -> Path:
    """Write the run's model card as README.md into its folder (training, `hf-fma evaluate` and `hf-fma
    push` call it), so that the folder is a complete model repository however it is uploaded. The
    arguments: see `model_card`; without a licence, the folder's card keeps the one it has (the one
    `hf-fma push --license` published), else DEFAULT_LICENSE."""
    path = Path(run_dir) / "README.md"
    if license is None:
        license = (ModelCard.load(path).data.license if path.is_file() else None) or DEFAULT_LICENSE
    card = model_card(run_dir, repo_id=repo_id, dataset_id=dataset_id, license=license, location=location)
    return write_text_atomic(path, card.content)


def _trainer_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / TRAINER_STATE_NAME
    return read_json(path) if path.is_file() else {}


__all__ = [
    "hub_dataset_id",
    "model_card",
    "render_template",
    "reproduce_commands",
    "require_test_evaluation",
    "write_run_card",
]
