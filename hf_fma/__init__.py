"""hf-fma: music-genre classification on the Free Music Archive with AST and a CNN baseline.

    >>> from hf_fma import load_fma
    >>> ds = load_fma("small", data_dir="/data/fma")

Importing the package is light: `hf_fma.load_fma` and `hf_fma.metadata` need neither torch nor
transformers. `import hf_fma.models` (which every module that builds or loads a model imports) registers
the CNN baseline and FmaASTFeatureExtractor with transformers' Auto classes, so
`AutoModelForAudioClassification.from_pretrained(folder)` works on folders this package saved.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # PEP 562: `hf_fma.load_fma` imports `datasets` on first use only, so `import hf_fma` stays cheap.
    if name == "load_fma":
        from hf_fma.data import load_fma

        return load_fma
    raise AttributeError(f"module 'hf_fma' has no attribute {name!r}")


__all__ = ["__version__", "load_fma"]
