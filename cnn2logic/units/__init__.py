"""Kernel units: capture each kernel's pooled activation, binarise it, store the codes.

The road from a trained CNN to the binary codes every extractor reads:

:mod:`~cnn2logic.units.activations`
    :func:`capture` registers a forward hook on a named layer of any ``torch.nn.Module``
    and reduces each kernel's map to one number per image (:func:`reduce_maps`: max, mean,
    a norm, or every position; a 1x1 map is taken as it is).  The same hook loop streams
    batches for the sharded capture.
:mod:`~cnn2logic.units.thresholds`
    :func:`fit_thresholds` turns those numbers into bits (``half``, ``minmax``, ``eric``,
    ``mean``, ``median``; fitted on the training images, applied to others);
    :class:`RunningStats` fits them from running sums when the units do not fit in memory;
    :func:`save_thresholds` / :func:`load_thresholds` carry them between jobs.
:mod:`~cnn2logic.units.fidelity`
    thresholds chosen for fidelity to the network (``infogain`` per kernel, ``lookup``
    jointly) on units of any scale, and :func:`fit_binarisation`, which resolves any
    binarisation by name (``auto``: ``half`` on units in [0, 1], else ``infogain``).
:mod:`~cnn2logic.units.codes`
    :class:`BinaryCodes`, the bits with labels and network predictions, saved as a packed
    ``.npz``; :func:`codes_for` does capture, binarisation and labelling for one split.
:mod:`~cnn2logic.units.shards`
    Past one machine: :func:`capture_shard` captures shard ``i`` of ``n`` of a split
    (streamed, bounded memory) as an :class:`ActivationShard` file, and
    :func:`merge_shards` joins shards into one :class:`BinaryCodes`.

Data streaming (:func:`cnn2logic.data.iter_batches`) lives with the data sets, and
per-class extraction from the codes in :mod:`cnn2logic.extract.parts`.

Example
-------
>>> import torch
>>> from torch import nn
>>> from cnn2logic.units import capture, fit_thresholds
>>> net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Sigmoid())
>>> units = capture(net, "1", torch.zeros(4, 1, 5, 5), progress=False)
>>> units.values.shape, units.names
((4, 2), ('k1', 'k2'))
>>> fit_thresholds(units, "half").apply(units).shape
(4, 2)
"""

from .activations import (REDUCTIONS, KernelUnits, LayerBatch, capture, capture_split,
                          check_model_input, iter_layer_units, kernel_names, position_names,
                          layer_unit_names, reduce_maps, unit_names)
from .codes import BinaryCodes, check_binary, codes_for
from .fidelity import (BINARISATIONS, FIDELITY_THRESHOLDS, auto_binarisation,
                       fit_binarisation, fit_fidelity_thresholds)
from .shards import (FORMAT_VERSION, KINDS, SHARD_FORMAT, ActivationShard, merge_shards,
                     parse_shard, shard_range)
from .stream import capture_shard, capture_stream
from .thresholds import (THRESHOLDS, THRESHOLDS_FORMAT, RunningStats, Thresholds,
                         fit_stream_thresholds, fit_thresholds, load_thresholds,
                         save_thresholds, stream_statistics)

__all__ = [
    # fidelity
    "BINARISATIONS", "FIDELITY_THRESHOLDS", "auto_binarisation", "fit_binarisation",
    "fit_fidelity_thresholds",
    # activations
    "REDUCTIONS", "KernelUnits", "LayerBatch", "capture", "capture_split", "check_model_input",
    "iter_layer_units", "kernel_names",
    "position_names", "reduce_maps", "unit_names", "layer_unit_names",
    # thresholds
    "THRESHOLDS", "THRESHOLDS_FORMAT", "RunningStats", "Thresholds", "fit_stream_thresholds",
    "fit_thresholds", "load_thresholds", "save_thresholds", "stream_statistics",
    # codes
    "BinaryCodes", "check_binary", "codes_for",
    # shards
    "FORMAT_VERSION", "KINDS", "SHARD_FORMAT", "ActivationShard", "capture_shard",
    "capture_stream", "merge_shards", "parse_shard", "shard_range",
]
