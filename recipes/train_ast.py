#!/usr/bin/env python
"""Train the Audio Spectrogram Transformer on FMA genres with `Trainer`: from scratch (a preset) or
fine-tuned from an AST checkpoint (the AudioSet one by default), then evaluate it on the test split.

The offline demo on CPU, under a minute on 2 cores (`hf-fma make-demo demo_data` first):

    python recipes/train_ast.py --config hf_fma/configs/ast_demo.yaml
    accelerate launch --config_file hf_fma/configs/accelerate/cpu.yaml recipes/train_ast.py \\
        --config hf_fma/configs/ast_demo.yaml
    torchrun --nproc_per_node 2 recipes/train_ast.py --config hf_fma/configs/ast_demo.yaml \\
        --use_cpu --per_device_train_batch_size 8     # 2 CPU processes (gloo), the same global batch

The study's AST from scratch on fma_small (the archives in data/fma), one GPU, eight GPUs, two nodes:

    accelerate launch --config_file hf_fma/configs/accelerate/gpu_bf16.yaml recipes/train_ast.py \\
        --config hf_fma/configs/ast_study_small.yaml --data_dir data/fma
    accelerate launch --config_file hf_fma/configs/accelerate/multi_gpu.yaml recipes/train_ast.py \\
        --config hf_fma/configs/ast_study_small.yaml --per_device_train_batch_size 8
    torchrun --nproc_per_node 8 recipes/train_ast.py --config hf_fma/configs/ast_study_small.yaml \\
        --per_device_train_batch_size 8 --bf16
    accelerate launch --config_file hf_fma/configs/accelerate/multi_node.yaml --machine_rank RANK \\
        recipes/train_ast.py --config hf_fma/configs/ast_finetune_medium.yaml

Any argument of the config file can be overridden on the command line (`--learning_rate 5e-4`); resume
with `--resume_from_checkpoint last`. All arguments: `python recipes/train_ast.py --help`
(ModelArguments, DataArguments and FmaTrainingArguments in hf_fma/arguments.py).
"""

import sys

from hf_fma.train import train_main


def main(argv: list[str] | None = None) -> int:
    # Arguments (the --config file overridden by flags) -> load the splits through the hf_fma loading
    # script, audio undecoded -> random-crop (training) and centre-crop (validation) transforms, batched
    # fbank collator -> the AST for those features -> Trainer, keeping the best validation accuracy ->
    # train -> clip- and track-level metrics on validation and test -> save. Every stage, commented, is
    # hf_fma.training.train_and_evaluate, shared by every recipe and the sample-size study.
    return train_main(argv, model_family="ast")


if __name__ == "__main__":
    sys.exit(main())
