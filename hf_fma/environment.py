"""`hf-fma env`: the versions a bug report needs, one `name: value` line each.

    hf-fma env

Python, platform, hf-fma, torch and its CUDA, transformers, datasets, accelerate, evaluate,
huggingface_hub; the audio decoders: soundfile and its libsndfile (with or without MP3, which libsndfile
reads from 1.1.0 on), torchcodec (what datasets >= 4 decodes `Audio` columns with), and the ffmpeg binary
(transformers' pipeline decodes file paths with it). Nothing is imported that is not installed, and a
package that fails to import is reported with its error rather than stopping the report.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import platform
import shutil
import subprocess
import sys
from collections.abc import Sequence

from hf_fma import __version__
from hf_fma.argparsing import ArgumentParser

_PACKAGES = ("transformers", "datasets", "accelerate", "evaluate", "huggingface_hub", "soxr", "numpy")


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _torch() -> list[tuple[str, str]]:
    try:
        torch = importlib.import_module("torch")
    except ImportError as error:
        return [("torch", f"not importable ({error})")]
    cuda = torch.version.cuda or "none (CPU build)"
    available = torch.cuda.is_available()
    devices = f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}" if available else ""
    return [("torch", torch.__version__), ("torch CUDA", f"{cuda}; available: {available}{devices}")]


def _soundfile() -> list[tuple[str, str]]:
    try:
        soundfile = importlib.import_module("soundfile")
    except (ImportError, OSError) as error:
        return [("soundfile", f"not importable ({error})")]
    mp3 = "yes" if "MP3" in soundfile.available_formats() else "no (hf-fma needs libsndfile >= 1.1.0)"
    return [("soundfile", soundfile.__version__), ("libsndfile", f"{soundfile.__libsndfile_version__}; MP3: {mp3}")]


# torchcodec wheels are built for one torch, and pip's default pick is a CUDA build: the CPU torch builds
# hf-fma is tested with, and the torchcodec release that loads beside each (scripts/setup.sh installs the
# same pair), so the fix names the release.
_TORCHCODEC_FOR_CPU_TORCH = {"2.13": "0.13.0"}


def _torchcodec_fix() -> str:
    """The pip command that installs a torchcodec built for this torch."""
    torch_version = _version("torch")
    release = _TORCHCODEC_FOR_CPU_TORCH.get(".".join(torch_version.split(".")[:2]))
    if release and "+cu" not in torch_version:
        return f'pip install "torchcodec=={release}"'
    return f"pip install the torchcodec release built for torch {torch_version} (torchcodec's compatibility table)"


def _root_cause(error: BaseException) -> str:
    """The first line of the innermost error: torchcodec wraps the missing library (e.g. `libnvrtc.so.13:
    cannot open shared object file`) in "Could not load this library"."""
    while error.__cause__ is not None:
        error = error.__cause__
    return (str(error).splitlines() or [type(error).__name__])[0]


def _torchcodec() -> list[tuple[str, str]]:
    version = _version("torchcodec")
    if version == "not installed":
        return [("torchcodec", "not installed (needed by datasets >= 4 to decode Audio columns)")]
    try:
        importlib.import_module("torchcodec.decoders")
    except Exception as error:  # a torchcodec built for another torch or CUDA fails in many ways at import
        return [("torchcodec", f"{version}, does not load ({_root_cause(error)}); datasets >= 4 cannot decode Audio columns: {_torchcodec_fix()}")]
    return [("torchcodec", f"{version}, loads")]


def _ffmpeg() -> list[tuple[str, str]]:
    binary = shutil.which("ffmpeg")
    if binary is None:
        return [("ffmpeg", "not found (transformers' pipeline cannot decode file paths)")]
    first_line = subprocess.run([binary, "-version"], capture_output=True, text=True).stdout.splitlines()[:1]
    return [("ffmpeg", f"{first_line[0] if first_line else 'unknown version'} ({binary})")]


def environment_report() -> list[tuple[str, str]]:
    """(name, value) pairs, in the order `hf-fma env` prints them."""
    rows = [
        ("hf-fma", __version__),
        ("Python", sys.version.split()[0]),
        ("platform", platform.platform()),
    ]
    rows += _torch()
    rows += [(name, _version(name)) for name in _PACKAGES]
    return rows + _soundfile() + _torchcodec() + _ffmpeg()


def main(argv: Sequence[str] | None = None) -> int:
    ArgumentParser(prog="hf-fma env", description=__doc__.split("\n\n")[0]).parse_args(argv)
    for name, value in environment_report():
        print(f"{name}: {value}")
    return 0


__all__ = ["environment_report", "main"]
