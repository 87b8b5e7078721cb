"""What a user sees on the terminal: no libmpg123 chatter from seeking, a corrupt file's messages and error
still shown, each `datasets` line once. Each check runs in a subprocess, since the C library writes to the
process's own stderr, which pytest's capture cannot see.

Run: .venv/bin/python -m pytest tests/test_logs.py -q
"""

import random
import subprocess
import sys
import textwrap

from .conftest import REPO_ROOT

AST_DEMO = REPO_ROOT / "hf_fma" / "configs" / "ast_demo.yaml"


def run_python(code: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True, text=True, cwd=REPO_ROOT
    )


def test_seeking_in_mp3s_prints_nothing_but_a_corrupt_file_is_still_reported(demo_dir, tmp_path):
    examples = sorted((demo_dir / "examples").glob("*.mp3"))
    data = bytearray(examples[0].read_bytes())
    rng = random.Random(0)
    for position in range(len(data) // 3, 2 * len(data) // 3):  # garbage over the middle third
        data[position] = rng.randrange(256)
    corrupt = tmp_path / "corrupt.mp3"
    corrupt.write_bytes(bytes(data))
    # Crops at six offsets of every example, in a DataLoader worker process and in the main one (libmpg123
    # printed ~1,400 lines per demo run from these seeks), then a crop inside the garbage.
    result = run_python(
        """
        import sys, torch
        from hf_fma.audio import load_crop, load_audio
        crops = [(path, index) for path in sys.argv[1:-1] for index in range(6)]
        decode = lambda crop: load_crop(crop[0], 3.0, "even", crop[1], 6)
        for _ in torch.utils.data.DataLoader(crops, batch_size=None, num_workers=1, collate_fn=decode):
            pass
        for crop in crops:
            decode(crop)
        print("crops decoded", flush=True)
        load_audio(sys.argv[-1], offset=4.0, duration=3.0)
        """,
        *examples, corrupt,
    )  # fmt: skip
    assert "crops decoded" in result.stdout, result.stderr[-3000:]
    assert "part2_3_length" not in result.stderr and "dequantization failed" not in result.stderr
    # The corrupt file: libmpg123's own report of what is wrong with it, then our error naming the file.
    assert "Illegal Audio-MPEG-Header" in result.stderr
    assert f"AudioDecodeError: cannot decode audio {corrupt}: decoding failed at sample" in result.stderr
    assert result.returncode == 1


def test_each_datasets_log_line_is_printed_once(demo_dir, tmp_path):
    result = run_python(
        """
        import sys
        from hf_fma.arguments import parse_arguments
        from hf_fma.data import load_splits
        from hf_fma.train import setup_logging
        model_args, data_args, training_args = parse_arguments(sys.argv[1:])
        setup_logging(training_args)
        load_splits(data_args.dataset_config_name, data_dir=data_args.data_dir, num_proc=data_args.preprocessing_num_workers)
        """,
        "--config", AST_DEMO, "--data_dir", demo_dir, "--output_dir", tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    terminal = result.stdout + result.stderr
    # datasets' first INFO line when it loads a configuration, prepared or cached
    assert terminal.count("Using custom data configuration small-") == 1, terminal[-3000:]


def test_weight_loading_warnings_show_even_when_only_errors_are_asked_for(tmp_path):
    from safetensors.torch import load_file, save_file

    from hf_fma.models import FmaASTFeatureExtractor, build_cnn

    folder = tmp_path / "cnn"
    build_cnn("tiny", FmaASTFeatureExtractor(max_length=100), ["Folk", "Rock"]).save_pretrained(folder)
    weights = load_file(folder / "model.safetensors")
    dropped = sorted(weights)[0]
    save_file({key: tensor for key, tensor in weights.items() if key != dropped}, folder / "model.safetensors")
    result = run_python(
        """
        import sys
        from transformers import AutoModelForAudioClassification
        from hf_fma.arguments import parse_arguments
        from hf_fma.train import setup_logging
        setup_logging(parse_arguments(["--output_dir", sys.argv[1], "--log_level", "error"])[2])
        AutoModelForAudioClassification.from_pretrained(sys.argv[2])
        """,
        tmp_path / "run", folder,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert dropped in result.stderr  # transformers' report of the weight it had to initialise
