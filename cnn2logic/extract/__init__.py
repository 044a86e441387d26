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
``rulelist`` (the default)
    A compact decision list fitted to the network's predictions within a budget
    (``max_rules``, ``max_literals``): conjunctions and M-of-N rules, an earlier rule an
    exception to the later ones, on bits thresholded for fidelity.

Layout: :mod:`~cnn2logic.extract.base` (the :class:`Extractor` base class and the
:data:`REGISTRY` of methods), :mod:`~cnn2logic.extract.config` (the settings:
:class:`ExtractConfig`), :mod:`~cnn2logic.extract.run` (the one driver:
:func:`extract_model`), :mod:`~cnn2logic.extract.layers` (what is read from the model)
and one module per method, which registers itself when imported here.

:data:`METHODS` maps each name (``cnn2logic extract --method NAME``) to its class.
"""

# The order of these imports is the order of REGISTRY (and of the --method choices).
from .approximation import ApproximationExtractor
from .mofn import MofNExtractor
from .eric import EricExtractor
from .chaining import ChainingExtractor
from .pedagogical import PedagogicalExtractor
from .rulelist import RuleListExtractor
from .base import REGISTRY, Extractor
from . import config as _config

# Every method has registered its own settings section: the config can be assembled.
ExtractConfig = _config.build()
from .run import ExtractionResult, extract_model

METHODS = {name: method.extractor for name, method in REGISTRY.items()}

__all__ = ["ApproximationExtractor", "ChainingExtractor", "EricExtractor", "MofNExtractor",
           "PedagogicalExtractor", "RuleListExtractor", "METHODS", "REGISTRY", "Extractor", "ExtractConfig",
           "ExtractionResult", "extract_model"]
