"""hf-fma: music-genre classification on the Free Music Archive with AST and a CNN baseline.

Importing the package registers the CNN baseline with transformers' Auto classes, so
`AutoModelForAudioClassification.from_pretrained(folder)` works on folders this package saved.
"""

__version__ = "0.1.0"

from . import models  # noqa: E402,F401  registers the CNN and FmaASTFeatureExtractor with the Auto classes
