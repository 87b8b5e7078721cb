#!/usr/bin/env python
"""Train the RNN-LSTM baseline on FMA genres with `Trainer` (the references' two LSTM layers on MFCC, or
the tiny preset), on the same data path as AST and the CNN, then evaluate it on the test split.

The offline demo on CPU (`hf-fma make-demo demo_data` first):

    python recipes/train_lstm.py --config hf_fma/configs/lstm_demo.yaml
    accelerate launch --config_file hf_fma/configs/accelerate/cpu.yaml recipes/train_lstm.py \\
        --config hf_fma/configs/lstm_demo.yaml

The references' RNN-LSTM on 13 MFCC of 5 s crops of fma_small (the archives in data/fma), one GPU:

    accelerate launch --config_file hf_fma/configs/accelerate/gpu_bf16.yaml recipes/train_lstm.py \\
        --config hf_fma/configs/lstm_mfcc_small.yaml --data_dir data/fma

Any argument of the config file can be overridden on the command line (`--num_mfcc 20 --mfcc_delta_order 2`);
resume with `--resume_from_checkpoint last`. All arguments: `python recipes/train_lstm.py --help`.
"""

import sys

from hf_fma.train import train_main


def main(argv: list[str] | None = None) -> int:
    # Every stage (arguments, splits, crop transforms, batched MFCC collator, the LSTM, Trainer, track-level
    # evaluation, save) is hf_fma.training.train_and_evaluate, shared with the AST and CNN recipes.
    return train_main(argv, model_family="lstm")


if __name__ == "__main__":
    sys.exit(main())
