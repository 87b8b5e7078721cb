"""`hf-fma train`: train AST or the CNN from a config file or a shipped config's name, installed or not.

    hf-fma train ast_demo --data_dir demo_data                     # a shipped config, by name
    hf-fma train my_run.yaml --learning_rate 5e-4                  # any YAML/JSON file; flags override it
    accelerate launch --config_file "$(hf-fma configs accelerate/multi_gpu)" -m hf_fma.train \\
        ast_study_small --data_dir /data/fma --per_device_train_batch_size 8
    hf-fma configs                                                 # the shipped configs and their paths

The config's `model_family` picks the model; every argument is the recipes' (`hf-fma train --help`).
`python -m hf_fma.train` is the same command, for `accelerate launch -m` and `torchrun -m`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from hf_fma.argparsing import ArgumentParser
from hf_fma.configs import CONFIGS_DIR, shipped_configs


def main(argv: Sequence[str] | None = None) -> int:
    """`hf-fma train CONFIG [--argument value ...]`: CONFIG as the first argument is `--config CONFIG`; a
    user error ends it with one line and exit status 2, as every hf-fma command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        # Without a config every argument would take its default, which downloads fma_small (7.2 GiB).
        print(
            "usage: hf-fma train CONFIG [--argument value ...]; CONFIG is a YAML/JSON file or a shipped config "
            "(`hf-fma configs`); `hf-fma train --help` lists every argument",
            file=sys.stderr,
        )
        return 2
    from hf_fma.recipe import train_main  # imported here: `hf-fma configs` needs neither torch nor transformers

    return train_main(argv, prog="hf-fma train")


def configs_main(argv: Sequence[str] | None = None) -> int:
    """`hf-fma configs [NAME]`: list the shipped configs, or print the path of one (for accelerate's
    `--config_file`)."""
    parser = ArgumentParser(prog="hf-fma configs", description=configs_main.__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="a config's name (ast_demo, accelerate/cpu): print its path")
    args = parser.parse_args(argv)
    configs = shipped_configs()
    if args.name is not None:
        if args.name not in configs:
            print(f"hf-fma configs: no shipped config {args.name!r}; shipped: {', '.join(configs)}", file=sys.stderr)
            return 2
        print(configs[args.name])
        return 0
    width = max(map(len, configs))
    for name, path in configs.items():
        summary = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ")
        print(f"{name:<{width}}  {summary}")
    print(f"\n(in {CONFIGS_DIR}; `hf-fma configs NAME` prints one's path)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
