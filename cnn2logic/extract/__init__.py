"""Where rules are extracted: one module per method, each a ``fit``-style extractor.

``approximation``
    Tsukimoto's approximation method (the paper's), with argmax-sound and per-logit
    treatments of a softmax layer and a pruned, a naive and a truth-table search.
"""

from .approximation import ApproximationExtractor

__all__ = ["ApproximationExtractor"]
