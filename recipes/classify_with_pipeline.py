#!/usr/bin/env python
"""Classify audio files with a trained hf-fma model through transformers' own `pipeline`.

    python recipes/classify_with_pipeline.py runs/ast-demo demo_data/examples/*.mp3

The saved folder is a plain transformers model: this script needs nothing from hf_fma, which is the
point (a Hub user does the same with a repo id). `trust_remote_code=True` runs the code saved in the
folder for the CNN and for pooled features (FmaASTFeatureExtractor); plain AST folders do not need it.
File paths are decoded by the ffmpeg binary, and the pipeline classifies the first crop-length window
only: `hf-fma predict` classifies whole tracks.

A file that cannot be classified (missing, not audio, undecodable) gets one line on stderr naming it and
the reason; the other files are still classified. Exit status 0 when every file was classified, 1 when
some failed.
"""

import argparse
import sys
import warnings

from transformers import pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a saved model folder or Hub repo id")
    parser.add_argument("files", nargs="+", help="audio files")
    parser.add_argument("--top_k", "--top-k", type=int, default=3)
    args = parser.parse_args(argv)

    # Every ASTFeatureExtractor with AST's 128 Kaldi mel bins warns that its lowest filter is empty at 16 kHz
    # and 512 FFT points: AST's standard set-up, the one the model was trained on, nothing to act on.
    warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
    classifier = pipeline("audio-classification", model=args.model, trust_remote_code=True)
    failed = 0
    # One file per call: a batch call stops at the first bad file and loses the others' results.
    for path in args.files:
        try:
            predictions = classifier(path, top_k=args.top_k)
        except (OSError, ValueError, RuntimeError) as error:  # missing file, not audio, decoder failure
            failed += 1
            print(f"{path}: cannot classify: {error}", file=sys.stderr)
            continue
        print(path, " ".join(f"{p['label']}={p['score']:.2f}" for p in predictions))
    if failed:
        print(f"{failed} of {len(args.files)} file(s) could not be classified", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
