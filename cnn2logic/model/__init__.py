"""Networks in: describe, build, train, save and load the CNN that rules are extracted from.

Concepts
--------
spec (:mod:`~cnn2logic.model.spec`)
    A :class:`ModelSpec` is a small JSON-able description of a CNN of the paper's family
    (conv layers, one pooling step, optional hidden layers, a linear output); the paper's
    two networks are the named specs ``paper1`` and ``paper3``.  :func:`build_model` turns a
    spec into a :class:`SpecCNN`, an ``nn.Sequential`` with stable layer names (``conv1``,
    ``act1``, ..., ``pool``, ``out``) so that kernel units can be captured by name.
checkpoint (:mod:`~cnn2logic.model.spec`)
    A safetensors file holding the weights and the spec as JSON metadata
    (:func:`save_checkpoint`, :func:`load_checkpoint`); nothing is unpickled.
your own CNN (modules ``load``, ``factory`` and ``exported``)
    Any ``torch.nn.Module``: built by a *factory* (``"package.module:function"`` or
    ``"file.py:function"``) with its weights read from a plain state dict (safetensors,
    weights-only ``.pt``, TorchScript, ``.pt2``), or a ``torch.export`` program on its own.
    :func:`load_model` is the one entry point for every kind of model file.
safe loading (:mod:`~cnn2logic.model.safeload`)
    A model file never runs code: ``.pt2`` archives are checked before torch reads them
    and read with unpickling refused; TorchScript is refused unless trusted.
training (:mod:`~cnn2logic.model.training`)
    :func:`train` with the paper's defaults (:class:`TrainConfig`), for a spec or any
    module, with optional extra loss terms.
logic-friendly training (:mod:`~cnn2logic.model.logic_training`)
    A :class:`BinaryUnits` layer makes the network decide through hard 0/1 kernel units,
    so that rules over the binarised units can be exact.
where the kernels are (:mod:`~cnn2logic.model.layers`)
    The kernel layer and the layer that reads it, found on any CNN by one forward pass
    (``--layer auto``): a spec net's ``pool`` / ``out``, else the last map after the last
    convolution and the linear layer after it.
tuning (:mod:`~cnn2logic.model.tuning`, the driver)
    :func:`~cnn2logic.model.tuning.tune_model` fine-tunes a trained CNN until its decision
    *is* a rule list over kernel bits; its stages: ``tune_config`` (what it is told),
    ``tune_setup`` (thresholds, kernels, the logic units put in place), ``tune_loop``
    (training steps, collapse checks, the list fit); the layers of a tuned network are in
    ``logic_head``.
interpretable filters (:mod:`~cnn2logic.model.interpretable`)
    Zhang et al.'s template mask (:class:`InterpretableMask`) and filter loss: one part,
    one location per top-layer filter.

The command-line options that load a model (``--factory``...) live in
:mod:`cnn2logic.cli._model_args`.

Example
-------
>>> from cnn2logic.model import build_model, named_spec
>>> [name for name, _ in build_model(named_spec("paper1")).named_children()]
['conv1', 'act1', 'pool', 'flatten', 'out']
"""

from .exported import load_exported
from .factory import build_from_factory, import_factory, parse_factory_kwargs
from .interpretable import InterpretableMask, capture_maps, filter_loss, map_statistics
from .load import (checkpoint_kind, conv_layers, file_digest, load_model, read_state_dict,
                   save_weights)
from .logic_training import BinaryUnits, binary_penalty_loss
from .safeload import check_export_archive, check_torchscript, no_unpickling
from .spec import (PAPER_FIGURES, PAPER_ITERATIONS, PAPER_SPECS, ConvSpec, ModelSpec, SpecCNN,
                   build_model, layer_names, load_checkpoint, named_spec, predict_logits,
                   save_checkpoint, spec_from_arg)
from .training import TrainConfig, accuracy, metrics_json, train

__all__ = [
    # spec and checkpoints
    "ConvSpec", "ModelSpec", "SpecCNN", "PAPER_SPECS", "PAPER_ITERATIONS", "PAPER_FIGURES",
    "named_spec", "spec_from_arg", "build_model", "save_checkpoint", "load_checkpoint",
    "predict_logits", "layer_names",
    # bring your own CNN
    "load_model", "read_state_dict", "save_weights", "checkpoint_kind", "file_digest",
    "conv_layers", "import_factory", "parse_factory_kwargs", "build_from_factory",
    "load_exported",
    # safe loading
    "check_export_archive", "check_torchscript", "no_unpickling",
    # training
    "TrainConfig", "train", "accuracy", "metrics_json",
    "BinaryUnits", "binary_penalty_loss",
    "InterpretableMask", "filter_loss", "capture_maps", "map_statistics",
]
