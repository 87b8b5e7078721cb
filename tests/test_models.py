"""The models: AST presets and position-embedding adaptation, the CNN and LSTM baselines, saving, remote code,
pipeline.

Tiny configurations only; the AST checkpoints are ones the tests save themselves (the Hub is offline).
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from datasets import ClassLabel
from transformers import ASTFeatureExtractor, ASTForAudioClassification, AutoModelForAudioClassification, pipeline

from hf_fma.metadata import SMALL_GENRES
from hf_fma.models import (
    AST_PRESETS,
    FmaASTFeatureExtractor,
    FmaCnnConfig,
    FmaCnnForAudioClassification,
    FmaLstmConfig,
    FmaLstmForAudioClassification,
    adapt_position_embeddings,
    build_ast,
    build_cnn,
    build_lstm,
    build_model,
    load_pretrained_ast,
)
from hf_fma.models.ast import patch_grid
from hf_fma.models.summary import main as summary_main

MEL_BINS, FRAMES = 32, 64  # the study's downscaled resolution, a short crop
HIDDEN = AST_PRESETS["tiny"].config["hidden_size"]


@pytest.fixture(scope="module")
def extractor():
    return ASTFeatureExtractor(num_mel_bins=MEL_BINS, max_length=FRAMES)


def _batch(batch_size=4, frames=FRAMES, mel_bins=MEL_BINS):
    return torch.randn(batch_size, frames, mel_bins, generator=torch.Generator().manual_seed(1))


def _train_steps(model, inputs, labels, steps=5):
    """A few Adam steps on one batch; returns the losses, first to last."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(steps):
        loss = model(inputs, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model.eval(), losses


def _save(model, extractor, folder):
    model.save_pretrained(folder)
    extractor.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def cnn_folder(tmp_path_factory, extractor):
    """A tiny CNN after a few training steps (so batch-norm statistics and logits are not at their init)."""
    torch.manual_seed(0)
    model = build_cnn("tiny", extractor, SMALL_GENRES)
    model, _ = _train_steps(model, _batch(8), torch.arange(8))
    return _save(model, extractor, tmp_path_factory.mktemp("cnn"))


@pytest.fixture(scope="module")
def mfcc_extractor():
    """13 MFCC with deltas and delta-deltas of 1 s pooled by 2 in time: 50 frames x 39 values."""
    return FmaASTFeatureExtractor(num_mel_bins=64, max_length=100, time_downscale=2, num_mfcc=13, mfcc_delta_order=2)


@pytest.fixture(scope="module")
def lstm_folder(tmp_path_factory, mfcc_extractor):
    """A tiny LSTM on MFCC after a few training steps, saved with its MFCC feature extractor."""
    torch.manual_seed(0)
    model = build_lstm("tiny", mfcc_extractor, SMALL_GENRES)
    model, _ = _train_steps(model, _batch(8, frames=50, mel_bins=39), torch.arange(8))
    return _save(model, mfcc_extractor, tmp_path_factory.mktemp("lstm"))


@pytest.fixture(scope="module")
def ast_folder(tmp_path_factory, extractor):
    """A tiny AST whose position embeddings are random (from-scratch init leaves them at zero)."""
    torch.manual_seed(0)
    model = build_model("tiny", extractor, SMALL_GENRES)
    torch.nn.init.normal_(model.audio_spectrogram_transformer.embeddings.position_embeddings)
    return _save(model, extractor, tmp_path_factory.mktemp("ast"))


# --- CNN -------------------------------------------------------------------------------------------------


def test_cnn_logits_loss_and_learning():
    model = build_cnn("tiny", ASTFeatureExtractor(num_mel_bins=MEL_BINS, max_length=FRAMES), SMALL_GENRES)
    inputs, labels = _batch(), torch.tensor([0, 3, 5, 7])
    output = model(inputs, labels=labels)
    assert output.logits.shape == (4, len(SMALL_GENRES))
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, labels))
    # Any number of frames: whole tracks and 5 s crops share the weights.
    assert model(_batch(frames=3 * FRAMES)).logits.shape == (4, len(SMALL_GENRES))
    _, losses = _train_steps(model, inputs, labels)
    assert losses[-1] < losses[0]


def _cnn_forward_from_weights(state: dict, config: FmaCnnConfig, input_values: torch.Tensor) -> torch.Tensor:
    """The CNN's logits recomputed from its state_dict with torch.nn.functional, as its config documents
    it: blocks of convolution ("same" padding, no bias), batch norm (running statistics), ReLU and max
    pooling (rounding up) over (mel_bins, frames), then global average pooling and the linear classifier."""
    F = torch.nn.functional
    hidden = input_values.transpose(1, 2).unsqueeze(1)  # (batch, 1, mel_bins, frames)
    for index, (kernel, pool) in enumerate(zip(config.kernel_sizes, config.pool_sizes)):
        block = f"blocks.{index}."
        hidden = F.conv2d(hidden, state[block + "conv.weight"], padding=kernel // 2)
        hidden = F.batch_norm(
            hidden, state[block + "norm.running_mean"], state[block + "norm.running_var"],
            state[block + "norm.weight"], state[block + "norm.bias"], training=False, eps=1e-5,
        )
        hidden = F.max_pool2d(F.relu(hidden), pool, ceil_mode=True)
    pooled = hidden.mean(dim=(2, 3))  # (batch, channels)
    return F.linear(pooled, state["classifier.weight"], state["classifier.bias"])


def test_cnn_forward_is_conv_norm_relu_maxpool_then_global_average():
    """A seeded tiny CNN with non-trivial batch-norm statistics, on a fixed input of 7 frames x 16 mel bins
    (odd frames: max pooling rounds up), pinned to the forward recomputed from its weights."""
    torch.manual_seed(0)
    config = FmaCnnConfig(num_mel_bins=16, hidden_sizes=[4, 6], kernel_sizes=[3, 5], pool_sizes=[2, 2],
                          id2label={0: "Folk", 1: "Pop", 2: "Rock"}, label2id={"Folk": 0, "Pop": 1, "Rock": 2})
    model = FmaCnnForAudioClassification(config)
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():  # every weight and statistic random (running_var positive)
            tensor.copy_(torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor))
    model.eval()
    input_values = torch.randn(3, 7, 16, generator=torch.Generator().manual_seed(2))  # (batch, frames, mel)
    with torch.no_grad():
        logits = model(input_values).logits
        expected = _cnn_forward_from_weights(model.state_dict(), config, input_values)
    assert logits.shape == (3, 3)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits[0], logits[1])  # a pinned output that depends on the input


def test_cnn_loss_accepts_soft_labels_from_mixup():
    model = FmaCnnForAudioClassification(FmaCnnConfig(num_mel_bins=MEL_BINS, hidden_sizes=[4, 4, 8, 8, 8])).eval()
    inputs, labels = _batch(2), torch.tensor([0, 1])
    one_hot = torch.nn.functional.one_hot(labels, 2).float()
    torch.testing.assert_close(model(inputs, labels=one_hot).loss, model(inputs, labels=labels).loss)
    mixed = 0.7 * one_hot + 0.3 * one_hot.flip(0)  # (batch, num_labels)
    logits = model(inputs).logits
    expected = -(mixed * logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(model(inputs, labels=mixed).loss, expected)


def test_cnn_rejects_bad_config_and_input(extractor):
    with pytest.raises(ValueError, match="one value per convolution block"):
        FmaCnnConfig(hidden_sizes=[8, 16], kernel_sizes=[3, 3, 3], pool_sizes=[2, 2])
    with pytest.raises(ValueError, match="unknown CNN preset 'huge'; valid presets: study, tiny"):
        build_cnn("huge", extractor, SMALL_GENRES)
    model = FmaCnnForAudioClassification(FmaCnnConfig(num_mel_bins=MEL_BINS))
    with pytest.raises(ValueError, match=r"\(batch, frames, 32 mel bins\), got shape \(4, 32, 64\)"):
        model(_batch().transpose(1, 2))


# --- LSTM ------------------------------------------------------------------------------------------------


def _lstm_forward_from_weights(state: dict, config: FmaLstmConfig, input_values: torch.Tensor) -> torch.Tensor:
    """The LSTM's logits recomputed from its state_dict, one frame at a time, from the LSTM equations
    (gates i, f, g, o stacked in that order in torch's weights): i, f, o = sigmoid, g = tanh of
    W_ih x_t + b_ih + W_hh h_{t-1} + b_hh; c_t = f c_{t-1} + i g; h_t = o tanh(c_t). A bidirectional
    layer runs a second set (suffix _reverse) from the last frame to the first and concatenates. Then the
    configured pooling, the dense ReLU layer and the classifier."""
    F = torch.nn.functional
    sequence = input_values  # (batch, frames, features)
    frames = sequence.shape[1]
    for layer in range(config.num_hidden_layers):
        directions = []
        for suffix, order in (("", range(frames)), ("_reverse", range(frames - 1, -1, -1))):
            if suffix and not config.bidirectional:
                continue
            weights = {name: state[f"lstm.{name}_l{layer}{suffix}"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            h = torch.zeros(len(sequence), config.hidden_size)
            c = torch.zeros(len(sequence), config.hidden_size)
            outputs = [None] * frames
            for t in order:
                gates = sequence[:, t] @ weights["weight_ih"].T + weights["bias_ih"] + h @ weights["weight_hh"].T + weights["bias_hh"]
                i, f, g, o = gates.chunk(4, dim=-1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                outputs[t] = h
            directions.append(torch.stack(outputs, dim=1))  # (batch, frames, hidden)
        sequence = torch.cat(directions, dim=-1)
    if config.pooling == "mean":
        pooled = sequence.mean(dim=1)
    else:  # each direction after reading every frame
        pooled = torch.cat([sequence[:, -1, : config.hidden_size], sequence[:, 0, config.hidden_size :]], dim=-1)
    dense = F.relu(F.linear(pooled, state["dense.0.weight"], state["dense.0.bias"]))
    return F.linear(dense, state["classifier.weight"], state["classifier.bias"])


@pytest.mark.parametrize(
    "settings", [dict(pooling="last"), dict(pooling="last", bidirectional=True), dict(pooling="mean", bidirectional=True)],
    ids=["last frame", "bidirectional, last frames", "bidirectional, mean"],
)
def test_lstm_forward_is_stacked_lstm_then_pooling_dense_and_classifier(settings):
    torch.manual_seed(0)
    labels = {"id2label": {0: "Folk", 1: "Pop", 2: "Rock"}, "label2id": {"Folk": 0, "Pop": 1, "Rock": 2}}
    config = FmaLstmConfig(num_features=5, hidden_size=4, num_hidden_layers=2, intermediate_size=6, **settings, **labels)
    model = FmaLstmForAudioClassification(config)
    for tensor in model.state_dict().values():
        tensor.copy_(torch.randn_like(tensor))  # biases too (initialised to zero)
    model.eval()
    input_values = torch.randn(3, 7, 5, generator=torch.Generator().manual_seed(2))  # (batch, frames, features)
    with torch.no_grad():
        logits = model(input_values).logits
        expected = _lstm_forward_from_weights(model.state_dict(), config, input_values)
    assert logits.shape == (3, 3)
    torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(logits[0], logits[1])


def test_lstm_is_sized_to_mfcc_learns_and_rejects_bad_config_and_input(mfcc_extractor):
    model = build_lstm("study", mfcc_extractor, SMALL_GENRES)
    assert model.config.num_features == 39 and (model.config.hidden_size, model.config.num_hidden_layers) == (64, 2)
    inputs, labels = _batch(4, frames=50, mel_bins=39), torch.tensor([0, 3, 5, 7])
    output = model(inputs, labels=labels)
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, labels))
    _, losses = _train_steps(model, inputs, labels)
    assert losses[-1] < losses[0]
    with pytest.raises(ValueError, match="unknown LSTM preset 'huge'; valid presets: study, tiny"):
        build_lstm("huge", mfcc_extractor, SMALL_GENRES)
    with pytest.raises(ValueError, match="pooling must be one of last, mean, got 'max'"):
        FmaLstmConfig(pooling="max")
    with pytest.raises(ValueError, match=r"\(batch, frames, 39 features\), got shape \(4, 39, 50\)"):
        model(inputs.transpose(1, 2))


# --- AST presets and position embeddings ------------------------------------------------------------------


def test_ast_preset_sized_to_the_extractor_with_sdpa_and_genre_head(extractor):
    model = build_model("tiny", extractor, ClassLabel(names=list(SMALL_GENRES)))  # the dataset's genre feature
    assert isinstance(model, ASTForAudioClassification)
    assert (model.config.max_length, model.config.num_mel_bins) == (FRAMES, MEL_BINS)
    assert model.config._attn_implementation == "sdpa"
    assert model.config.id2label[7] == "Rock" and model.config.label2id["Electronic"] == 0
    output = model(_batch(), labels=torch.tensor([0, 1, 2, 3]))
    assert output.logits.shape == (4, len(SMALL_GENRES))
    torch.testing.assert_close(output.loss, torch.nn.functional.cross_entropy(output.logits, torch.arange(4)))


# ASTFeatureExtractor's own numpy filter bank at 128 mel bins (torchaudio absent); not this package's doing.
@pytest.mark.filterwarnings("ignore:At least one mel filter has all zero values")
def test_models_are_sized_to_downscaled_features():
    # The study's features: 128 mel bins x 500 frames pooled 4 x 4 by the extractor saved with the model.
    downscaled = FmaASTFeatureExtractor(max_length=500, frequency_downscale=4, time_downscale=4)
    ast = build_model("tiny", downscaled, SMALL_GENRES)
    assert (ast.config.max_length, ast.config.num_mel_bins) == (125, 32)
    assert build_cnn("tiny", downscaled, SMALL_GENRES).config.num_mel_bins == 32


def test_ast_bad_names_and_shapes_are_explained(extractor):
    with pytest.raises(ValueError, match="neither an AST preset \\(study-scratch, audioset, tiny\\)"):
        build_model("no-such-preset-or-folder", extractor, SMALL_GENRES)
    with pytest.raises(ValueError, match="need at least 16 mel bins and frames, got 8 mel bins"):
        build_ast("tiny", 8, FRAMES, SMALL_GENRES)
    with pytest.raises(ValueError, match="use load_pretrained_ast or build_model"):
        build_ast("audioset", MEL_BINS, FRAMES, SMALL_GENRES)


def test_adapt_position_embeddings_cuts_the_centre_and_keeps_the_tokens():
    hidden = 3
    grid = torch.arange(4 * 6 * hidden, dtype=torch.float32).reshape(4, 6, hidden)  # (frequency, time, hidden)
    embeddings = torch.cat([torch.full((2, hidden), -1.0), grid.reshape(24, hidden)]).unsqueeze(0)
    adapted = adapt_position_embeddings(embeddings, (4, 6), (2, 3))
    assert adapted.shape == (1, 2 + 2 * 3, hidden)
    torch.testing.assert_close(adapted[0, :2], embeddings[0, :2])
    torch.testing.assert_close(adapted[0, 2:].reshape(2, 3, hidden), grid[1:3, 2:5])


def test_adapt_position_embeddings_interpolates_a_longer_grid():
    hidden = 2
    rows = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # one value per frequency row, constant in time
    grid = rows[:, None, :].expand(2, 3, hidden)
    embeddings = torch.cat([torch.zeros(2, hidden), grid.reshape(6, hidden)]).unsqueeze(0)
    adapted = adapt_position_embeddings(embeddings, (2, 3), (2, 7))
    assert adapted.shape == (1, 2 + 2 * 7, hidden)
    torch.testing.assert_close(adapted[0, 2:].reshape(2, 7, hidden), rows[:, None, :].expand(2, 7, hidden))
    with pytest.raises(ValueError, match="do not match a 3 x 3 patch grid"):
        adapt_position_embeddings(embeddings, (3, 3), (2, 2))


def _with_tokens(grid: torch.Tensor) -> torch.Tensor:
    """(frequency, time, hidden) patch embeddings -> AST's (1, 2 + frequency * time, hidden), tokens first."""
    return torch.cat([torch.full((2, grid.shape[-1]), -7.0), grid.reshape(-1, grid.shape[-1])]).unsqueeze(0)


def _patches(adapted: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    return adapted[0, 2:].reshape(*grid, adapted.shape[-1])  # (frequency, time, hidden)


def test_adapt_position_embeddings_interpolates_both_axes_by_hand():
    """2 x 2 -> 4 x 4 on embeddings 40 f + 8 t: bilinear (half-pixel centres, edges held) maps the two
    source positions of an axis onto [v0, (3 v0 + v1) / 4, (v0 + 3 v1) / 4, v1]."""
    frequency_values, time_values = torch.tensor([0.0, 40.0]), torch.tensor([0.0, 8.0])
    grid = (frequency_values[:, None] + time_values[None, :])[..., None]  # (2, 2, 1)
    adapted = adapt_position_embeddings(_with_tokens(grid), (2, 2), (4, 4))
    expected = torch.tensor([0.0, 10.0, 30.0, 40.0])[:, None] + torch.tensor([0.0, 2.0, 6.0, 8.0])[None, :]
    torch.testing.assert_close(_patches(adapted, (4, 4))[..., 0], expected)
    torch.testing.assert_close(adapted[0, :2], torch.full((2, 1), -7.0))


@pytest.mark.parametrize(
    "source, target",
    [
        ((2, 3), (5, 7)),  # both axes interpolated
        ((4, 3), (2, 6)),  # frequency cut (centre rows 1-2), time interpolated
        ((2, 6), (3, 2)),  # time cut (centre columns 2-3), frequency interpolated
    ],
)
def test_adapt_position_embeddings_matches_a_2d_resize_of_the_grid(source, target):
    """Random embeddings (varying along frequency and time) against torch's own bilinear resize of the whole
    grid, with the centre kept on an axis that shrinks, as the AST authors do."""
    hidden = 3
    grid = torch.randn(*source, hidden, generator=torch.Generator().manual_seed(3))  # (frequency, time, hidden)
    adapted = adapt_position_embeddings(_with_tokens(grid), source, target)
    # An axis that shrinks keeps its centre: positions s // 2 - t // 2 onwards.
    rows, columns = (
        slice(s // 2 - t // 2, s // 2 - t // 2 + t) if t <= s else slice(None) for s, t in zip(source, target)
    )
    channels_first = grid[rows, columns].permute(2, 0, 1)[None]  # (1, hidden, frequency, time)
    expected = torch.nn.functional.interpolate(channels_first, size=target, mode="bilinear", align_corners=False)
    torch.testing.assert_close(_patches(adapted, target), expected[0].permute(1, 2, 0))


def test_pretrained_ast_interpolates_its_position_embeddings_to_more_mel_bins(ast_folder):
    """The frequency branch of fine-tuning: 48 mel bins where the checkpoint had 32 (4 frequency patches
    instead of 2), time unchanged; the model then runs on 48-bin inputs."""
    source = ASTForAudioClassification.from_pretrained(ast_folder).audio_spectrogram_transformer
    source_embeddings = source.embeddings.position_embeddings.detach()
    model = load_pretrained_ast(str(ast_folder), 48, FRAMES, SMALL_GENRES)
    assert patch_grid(model.config) == (4, 5)
    adapted = model.audio_spectrogram_transformer.embeddings.position_embeddings.detach()
    grid = source_embeddings[0, 2:].reshape(2, 5, HIDDEN).permute(2, 0, 1)[None]  # (1, hidden, 2, 5)
    expected = torch.nn.functional.interpolate(grid, size=(4, 5), mode="bilinear", align_corners=False)
    torch.testing.assert_close(_patches(adapted, (4, 5)), expected[0].permute(1, 2, 0))
    torch.testing.assert_close(adapted[0, :2], source_embeddings[0, :2])
    assert model(_batch(2, mel_bins=48)).logits.shape == (2, len(SMALL_GENRES))


def test_pretrained_ast_keeps_its_weights_on_a_new_input_shape(ast_folder):
    checkpoint = ASTForAudioClassification.from_pretrained(ast_folder)
    source = checkpoint.audio_spectrogram_transformer.state_dict()
    assert patch_grid(checkpoint.config) == (2, 5)
    source_grid = source["embeddings.position_embeddings"][0, 2:].reshape(2, 5, HIDDEN)  # (frequency, time, hidden)

    # Fewer mel bins and frames: 1 x 3 patches cut from the centre of the checkpoint's 2 x 5.
    model = load_pretrained_ast(str(ast_folder), 16, 40, ["Folk", "Pop", "Rock"])
    backbone = model.audio_spectrogram_transformer.state_dict()
    assert patch_grid(model.config) == (1, 3)
    embeddings = backbone["embeddings.position_embeddings"]
    torch.testing.assert_close(embeddings[0, :2], source["embeddings.position_embeddings"][0, :2])
    torch.testing.assert_close(embeddings[0, 2:].reshape(1, 3, HIDDEN), source_grid[1:2, 1:4])
    for name, weight in source.items():
        if name != "embeddings.position_embeddings":
            torch.testing.assert_close(backbone[name], weight, msg=name)
    assert model.config.id2label == {0: "Folk", 1: "Pop", 2: "Rock"}
    assert model(_batch(2, frames=40, mel_bins=16)).logits.shape == (2, 3)

    # More frames than the checkpoint: interpolated in time.
    longer = load_pretrained_ast(str(ast_folder), MEL_BINS, 124, SMALL_GENRES)
    assert longer.audio_spectrogram_transformer.embeddings.position_embeddings.shape == (1, 2 + 2 * 11, HIDDEN)
    assert longer(_batch(2, frames=124)).logits.shape == (2, len(SMALL_GENRES))


def test_load_pretrained_ast_rejects_other_models(cnn_folder):
    with pytest.raises(ValueError, match="holds a FmaCnnConfig, not an AST checkpoint"):
        load_pretrained_ast(str(cnn_folder), MEL_BINS, FRAMES, SMALL_GENRES)


# --- Saving, loading, remote code, pipeline ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cnn", "ast", "lstm"])
def test_save_and_auto_load_give_identical_logits(kind, cnn_folder, ast_folder, lstm_folder):
    folder = {"cnn": cnn_folder, "ast": ast_folder, "lstm": lstm_folder}[kind]
    expected_class = {
        "cnn": FmaCnnForAudioClassification, "ast": ASTForAudioClassification, "lstm": FmaLstmForAudioClassification
    }[kind]
    saved = expected_class.from_pretrained(folder).eval()
    loaded = AutoModelForAudioClassification.from_pretrained(folder).eval()
    assert type(loaded) is expected_class
    inputs = _batch(frames=50, mel_bins=39) if kind == "lstm" else _batch()
    with torch.no_grad():
        logits = loaded(inputs).logits
        torch.testing.assert_close(logits, saved(inputs).logits, rtol=0, atol=0)
    assert not torch.allclose(logits[0], logits[1])  # the comparison is not between constant outputs


_WITHOUT_HF_FMA = textwrap.dedent(
    """
    import json, sys
    class BlockHfFma:  # as on a machine where hf_fma is not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "hf_fma":
                raise ModuleNotFoundError(f"No module named {name!r}")
    sys.meta_path.insert(0, BlockHfFma())

    import numpy as np, torch
    from transformers import AutoModelForAudioClassification, pipeline
    cnn_folder, ast_folder, inputs_path = sys.argv[1:]
    cnn = AutoModelForAudioClassification.from_pretrained(cnn_folder, trust_remote_code=True).eval()
    with torch.no_grad():
        logits = cnn(torch.from_numpy(np.load(inputs_path))).logits
    audio = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    top = pipeline("audio-classification", model=ast_folder)(audio, top_k=1)[0]["label"]
    print(json.dumps({"cnn_class": type(cnn).__module__, "logits": logits.tolist(), "ast_top": top,
                      "hf_fma_imported": any(m.split(".")[0] == "hf_fma" for m in sys.modules)}))
    """
)


def test_saved_folders_work_with_transformers_alone(cnn_folder, ast_folder, tmp_path):
    inputs = _batch()
    np.save(tmp_path / "inputs.npy", inputs.numpy())
    result = subprocess.run(
        [sys.executable, "-c", _WITHOUT_HF_FMA, str(cnn_folder), str(ast_folder), str(tmp_path / "inputs.npy")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["cnn_class"].startswith("transformers_modules.")  # the code saved beside the weights
    assert not report["hf_fma_imported"]
    with torch.no_grad():
        expected = FmaCnnForAudioClassification.from_pretrained(cnn_folder).eval()(inputs).logits
    torch.testing.assert_close(torch.tensor(report["logits"]), expected)
    assert report["ast_top"] in SMALL_GENRES


_LSTM_PIPELINE_WITHOUT_HF_FMA = _WITHOUT_HF_FMA.split("import numpy as np, torch")[0] + textwrap.dedent(
    """
    import numpy as np
    from transformers import pipeline
    folder, clip_path = sys.argv[1:]
    classifier = pipeline("audio-classification", model=folder, trust_remote_code=True)
    scores = classifier(np.load(clip_path), top_k=None)
    print(json.dumps({"model_class": type(classifier.model).__module__,
                      "extractor_class": type(classifier.feature_extractor).__module__,
                      "scores": {score["label"]: score["score"] for score in scores},
                      "hf_fma_imported": any(m.split(".")[0] == "hf_fma" for m in sys.modules)}))
    """
)


def test_lstm_on_mfcc_classifies_real_music_in_pipeline_with_transformers_alone(lstm_folder, fma_sample, tmp_path):
    """The saved LSTM and its MFCC extractor, run from their saved code where hf_fma cannot be imported,
    score a real track exactly as the classes of hf_fma do."""
    clip = _first_seconds(fma_sample / "fma_small" / "000" / "000002.mp3", seconds=1)
    np.save(tmp_path / "clip.npy", clip)
    result = subprocess.run(
        [sys.executable, "-c", _LSTM_PIPELINE_WITHOUT_HF_FMA, str(lstm_folder), str(tmp_path / "clip.npy")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")},
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["model_class"].startswith("transformers_modules.")  # the code saved beside the weights
    assert report["extractor_class"].startswith("transformers_modules.")
    assert not report["hf_fma_imported"]
    extractor = FmaASTFeatureExtractor.from_pretrained(lstm_folder)
    inputs = extractor(clip, sampling_rate=16000, return_tensors="pt")["input_values"]  # (1, 50, 39)
    with torch.no_grad():
        probabilities = FmaLstmForAudioClassification.from_pretrained(lstm_folder).eval()(inputs).logits.softmax(-1)[0]
    expected = {SMALL_GENRES[index]: probability for index, probability in enumerate(probabilities.tolist())}
    assert report["scores"] == pytest.approx(expected, abs=1e-6)
    assert max(expected.values()) - min(expected.values()) > 1e-3  # the scores depend on the weights


def _first_seconds(mp3, seconds=3):
    """The MP3's first seconds decoded here: mono, at the extractor's 16 kHz."""
    samples, rate = sf.read(mp3, frames=44100 * seconds, dtype="float32")  # (samples, channels)
    return soxr.resample(samples.mean(axis=1), rate, 16000)


def _assert_genre_scores(results, count):
    assert len(results) == count
    for scores in results:
        assert sorted(score["label"] for score in scores) == sorted(SMALL_GENRES)
        assert sum(score["score"] for score in scores) == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("kind", ["cnn", "ast"])
def test_pipeline_classifies_arrays_of_the_real_mp3(kind, cnn_folder, ast_folder, fma_sample):
    classifier = pipeline("audio-classification", model=str({"cnn": cnn_folder, "ast": ast_folder}[kind]))
    clip = _first_seconds(fma_sample / "fma_small" / "000" / "000002.mp3")
    _assert_genre_scores([classifier(clip, top_k=len(SMALL_GENRES))], 1)
    _assert_genre_scores(classifier([clip, clip[::-1].copy(), clip], batch_size=2, top_k=len(SMALL_GENRES)), 3)


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="transformers decodes file paths with ffmpeg (scripts/setup.sh)")
@pytest.mark.parametrize("kind", ["cnn", "ast"])
def test_pipeline_classifies_mp3_and_wav_files(kind, cnn_folder, ast_folder, fma_sample, tmp_path):
    classifier = pipeline("audio-classification", model=str({"cnn": cnn_folder, "ast": ast_folder}[kind]))
    mp3 = fma_sample / "fma_small" / "000" / "000002.mp3"
    sf.write(tmp_path / "clip.wav", _first_seconds(mp3), 16000)
    files = [str(mp3), str(tmp_path / "clip.wav")]
    _assert_genre_scores(classifier(files, batch_size=2, top_k=len(SMALL_GENRES)), 2)


# --- hf-fma models ------------------------------------------------------------------------------------------


def test_models_command_reports_parameters_and_cost(capsys):
    argv = ["--model", "ast/tiny", "--model", "cnn/tiny", "--model", "lstm/tiny", "--shape", "32x64", "--repeats", "1"]
    assert summary_main(argv) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if "/tiny" in line]
    extractor = ASTFeatureExtractor(num_mel_bins=32, max_length=64)
    counts = {
        "ast/tiny": build_model("tiny", extractor, SMALL_GENRES).num_parameters(),
        "cnn/tiny": build_cnn("tiny", extractor, SMALL_GENRES).num_parameters(),
        "lstm/tiny": build_lstm("tiny", extractor, SMALL_GENRES).num_parameters(),
    }
    assert {row[0].strip(): int(row[2].replace(",", "")) for row in rows} == counts
    assert all(float(row[3].replace(",", "")) > 0 and float(row[4]) > 0 for row in rows)
    # The LSTM's multiply-accumulates, by hand: 64 frames x 2 layers x 4 gates x 32 units x (32 inputs + 32
    # recurrent), then the dense layer (32 x 32) and the classifier (32 x 8 genres).
    macs = {row[0].strip(): float(row[3].replace(",", "")) for row in rows}
    assert macs["lstm/tiny"] == pytest.approx((64 * 2 * 4 * 32 * 64 + 32 * 32 + 32 * 8) / 1e6, abs=0.06)
