#!/usr/bin/env python
"""Train the CNN baseline on FMA genres with `Trainer` (the study's five convolution blocks, or the tiny
preset), on the same features and data path as AST, then evaluate it on the test split.

The offline demo on CPU, under a minute on 2 cores (`hf-fma make-demo demo_data` first):

    python recipes/train_cnn.py --config hf_fma/configs/cnn_demo.yaml
    accelerate launch --config_file hf_fma/configs/accelerate/cpu.yaml recipes/train_cnn.py \\
        --config hf_fma/configs/cnn_demo.yaml
    torchrun --nproc_per_node 2 recipes/train_cnn.py --config hf_fma/configs/cnn_demo.yaml \\
        --use_cpu --per_device_train_batch_size 8     # 2 CPU processes (gloo), the same global batch

The study's CNN on fma_small and on mini (the archives in data/fma), one GPU or eight:

    accelerate launch --config_file hf_fma/configs/accelerate/gpu_bf16.yaml recipes/train_cnn.py \\
        --config hf_fma/configs/cnn_study_small.yaml --data_dir data/fma
    torchrun --nproc_per_node 8 recipes/train_cnn.py --config hf_fma/configs/cnn_study_mini.yaml \\
        --per_device_train_batch_size 8

Any argument of the config file can be overridden on the command line; resume with
`--resume_from_checkpoint last`. All arguments: `python recipes/train_cnn.py --help`.
"""

import sys

from hf_fma.train import train_main


def main(argv: list[str] | None = None) -> int:
    # Arguments (the --config file overridden by flags) -> load the splits through the hf_fma loading
    # script, audio undecoded -> random-crop (training) and centre-crop (validation) transforms, batched
    # fbank collator -> the CNN for those features -> Trainer, keeping the best validation accuracy ->
    # train -> clip- and track-level metrics on validation and test -> save. Every stage, commented, is
    # hf_fma.training.train_and_evaluate, shared by every recipe and the sample-size study.
    return train_main(argv, model_family="cnn")


if __name__ == "__main__":
    sys.exit(main())
