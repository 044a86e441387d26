"""Where rules are extracted: one module per method, each a ``fit``-style extractor.

``approximation``
    Tsukimoto's approximation method (the paper's), with argmax-sound and per-logit
    treatments of a softmax layer and a pruned, a naive and a truth-table search.
``mofn``
    M-of-N rules per output unit (Odense & d'Avila Garcez): information-gain splits,
    loss = error + beta * complexity, a beta sweep for the complexity-error curve.
``eric``
    ERIC-style: kernels quantised by a norm against alpha * mean + gamma * std, rules from
    a CART decision tree, with negation.
``chaining``
    Rules for each layer's kernels from the layer below (trees for conv layers, the
    approximation method for hidden fully connected layers), composed by substitution
    and minimised; fidelity per depth.
``pedagogical``
    The baseline: the lookup table of observed codes, minimised with espresso (unseen
    codes are don't-cares).

:data:`METHODS` maps each name (``cnn2logic extract --method NAME``) to its class.
"""

from .approximation import ApproximationExtractor
from .chaining import ChainingExtractor
from .eric import EricExtractor
from .mofn import MofNExtractor
from .pedagogical import PedagogicalExtractor

METHODS = {
    "approximation": ApproximationExtractor,
    "mofn": MofNExtractor,
    "eric": EricExtractor,
    "chaining": ChainingExtractor,
    "pedagogical": PedagogicalExtractor,
}

__all__ = ["ApproximationExtractor", "ChainingExtractor", "EricExtractor", "MofNExtractor",
           "PedagogicalExtractor", "METHODS"]
