"""The model options every subcommand that loads a network shares.

``--factory`` / ``--factory-kwargs`` (bring your own CNN) and ``--trust-model-file``, and
the one call that turns them, with the model path, into a loaded network
(:func:`cnn2logic.model.load_model`).
"""

from __future__ import annotations

import argparse

from torch import nn

from ..model import load_model


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--factory``, ``--factory-kwargs`` and ``--trust-model-file`` for a subcommand.

    Parameters
    ----------
    p : argparse.ArgumentParser
        The subcommand's parser.
    """
    p.add_argument("--factory", default=None, metavar="MODULE:FUNCTION",
                   help="bring your own CNN: 'package.module:function' or "
                        "'file.py:function' that builds the model; the checkpoint is then "
                        "a plain state dict (safetensors, weights-only .pt, TorchScript or "
                        ".pt2)")
    p.add_argument("--factory-kwargs", default=None, metavar="JSON",
                   help="keyword arguments for --factory: inline JSON object or a JSON file")
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

