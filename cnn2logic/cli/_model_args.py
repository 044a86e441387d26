"""The model options every subcommand that loads a network shares.

``--factory`` / ``--factory-kwargs`` (bring your own CNN), ``--arch`` / ``--arch-kwargs``
(a torchvision architecture by name, ``weights=None``: the file holds its weights) and
``--trust-model-file``, and the one call that turns them, with the model path, into a
loaded network (:func:`cnn2logic.model.load_model`).  ``--arch`` is stored as the factory
``torchvision:<name>`` (:func:`cnn2logic.model.factory.build_arch` builds it), so every
subcommand that reads ``args.factory`` takes it as it is; giving both is refused.
"""

from __future__ import annotations

import argparse

from torch import nn

from ..model import load_model
from ..model.factory import ARCH_PREFIXES, is_arch


class _OneBuilder(argparse.Action):
    """Store ``--arch``/``--factory`` (and their kwargs) in one place, refusing both.

    ``--arch resnet18`` means ``torchvision:resnet18``; another prefix is a usage error.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        value = str(values)
        if option_string == "--arch":
            if ":" not in value:
                value = f"{ARCH_PREFIXES[0]}{value}"
            if not is_arch(value):
                raise argparse.ArgumentError(
                    self, f"{value!r}: expected torchvision:<name>, e.g. torchvision:resnet18")
        elif option_string == "--factory" and is_arch(value):
            pass  # the same as --arch: allowed, one builder either way
        seen = getattr(namespace, "_builder_options", set())
        kind = "arch" if option_string in ("--arch", "--arch-kwargs") else "factory"
        other = "factory" if kind == "arch" else "arch"
        if other in seen:
            raise argparse.ArgumentError(self, f"give --arch or --factory, not both")
        setattr(namespace, "_builder_options", seen | {kind})
        setattr(namespace, self.dest, value)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--factory``/``--arch`` (and their kwargs), ``--trust-model-file`` for a subcommand.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The subcommand's parser.
    """
    p.add_argument("--factory", default=None, metavar="MODULE:FUNCTION", action=_OneBuilder,
                   help="bring your own CNN: 'package.module:function' or "
                        "'file.py:function' that builds the model; the checkpoint is then "
                        "a plain state dict (safetensors, weights-only .pt, TorchScript or "
                        ".pt2)")
    p.add_argument("--factory-kwargs", default=None, metavar="JSON", action=_OneBuilder,
                   help="keyword arguments for --factory: inline JSON object or a JSON file")
    p.add_argument("--arch", dest="factory", metavar="torchvision:NAME", action=_OneBuilder,
                   help="a torchvision architecture by name (torchvision:resnet18, "
                        "torchvision:vgg11_bn...), built with weights=None (nothing is "
                        "downloaded); the checkpoint is its state dict (safetensors or "
                        "weights-only .pt)")
    p.add_argument("--arch-kwargs", dest="factory_kwargs", metavar="JSON",
                   action=_OneBuilder,
                   help="keyword arguments for --arch, e.g. '{\"num_classes\": 10}'")
    p.add_argument("--trust-model-file", action="store_true",
                   help="allow a model file that runs code when loaded (a TorchScript "
                        "archive, or a .pt2 with pickled entries); off by default, such "
                        "files are refused. Use only for files you made yourself")


def model_from_args(args: argparse.Namespace, attr: str = "model") -> nn.Module:
    """Load the model a subcommand was given (``args.<attr>``, ``--factory``...).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed with the options of :func:`add_model_args`.
    attr : str
        The attribute holding the model file's path.

    Returns
    -------
    nn.Module
        In eval mode.

    Raises
    ------
    CheckpointError, ModelError
        As :func:`cnn2logic.model.load_model`.
    """
    return load_model(getattr(args, attr), factory=getattr(args, "factory", None),
                      factory_kwargs=getattr(args, "factory_kwargs", None),
                      trust=bool(getattr(args, "trust_model_file", False)))

