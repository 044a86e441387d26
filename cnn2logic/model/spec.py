"""CNN architectures from a small JSON-able spec, and safe checkpoints.

The paper's two networks are named specs (``paper1``, ``paper3``); any other CNN of the
same family is a :class:`ModelSpec`.  Layers get stable names (``conv1``, ``act1``, ...,
``pool``, ``hidden1``, ``out``) so kernel units can be captured by name; ``pool`` is the
pooled output of the last conv layer, the paper's rule variables.

Checkpoints are safetensors files: the weights plus the spec as JSON metadata.  Nothing
is unpickled; ``.pt`` files are read with ``torch.load(..., weights_only=True)`` and must
hold ``{"state_dict": {...}, "spec": "<json>"}``.

Example
-------
>>> from cnn2logic.model import build_model, named_spec
>>> model = build_model(named_spec("paper1"))
>>> [name for name, _ in model.named_children()]
['conv1', 'act1', 'pool', 'flatten', 'out']
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .._io import atomic_path
from ..errors import CheckpointError, ModelError
from .interpretable import InterpretableMask
from .logic_training import MODES as BINARY_MODES
from .logic_training import BinaryUnits
from .logic_head import apply_logic_layers

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU, "tanh": nn.Tanh, "identity": nn.Identity}
POOLS = ("max", "avg", "global-max", "global-avg", "none")
CHECKPOINT_SPEC_KEY = "cnn2logic_spec"


@dataclass(frozen=True)
class ConvSpec:
    """One conv layer of a :class:`ModelSpec`.

    Parameters
    ----------
    filters, size : int
        Number of kernels and their (square) size.
    activation : {"sigmoid", "relu", "tanh", "identity"}
    stride, padding : int
    batchnorm : bool
        A ``bn<i>`` BatchNorm layer between the conv and its activation.
    """

    filters: int
    size: int
    activation: str = "sigmoid"
    stride: int = 1
    padding: int = 0
    batchnorm: bool = False


@dataclass(frozen=True)
class ModelSpec:
    """A CNN: conv layers, one pooling step, optional hidden FC layers, a linear output.

    The output layer produces logits; softmax is applied by the loss and by
    :func:`predict_proba`, as in the paper's "linear 10 + softmax".

    Raises
    ------
    ModelError
        No conv layer, an unknown activation, pool or binary-unit mode, or sizes out of
        range.
    """

    convs: tuple[ConvSpec, ...]
    input_shape: tuple[int, int, int] = (1, 28, 28)
    pool: str = "max"
    pool_size: int = 2
    hidden: tuple[int, ...] = ()
    hidden_activation: str = "sigmoid"
    classes: int = 10
    name: str = "custom"
    # Logic-friendly training (cnn2logic.model.logic_training): a ``binarize`` layer after
    # ``pool`` that outputs hard 0/1 units at inference; "none" leaves the network as is.
    binary_units: str = "none"
    # Interpretable filters (cnn2logic.model.interpretable): a ``mask`` layer after the last
    # conv layer's activation.
    filter_mask: bool = False

    def __post_init__(self) -> None:
        if not self.convs:
            raise ModelError("a model spec needs at least one conv layer")
        for i, c in enumerate(self.convs, 1):
            if c.activation not in ACTIVATIONS:
                raise ModelError(
                    f"conv{i}: unknown activation {c.activation!r}; choose from "
                    f"{sorted(ACTIVATIONS)}"
                )
            if c.filters < 1 or c.size < 1 or c.stride < 1 or c.padding < 0:
                raise ModelError(f"conv{i}: filters, size and stride must be positive: {c}")
        if self.pool not in POOLS:
            raise ModelError(f"unknown pool {self.pool!r}; choose from {list(POOLS)}")
        if self.hidden_activation not in ACTIVATIONS:
            raise ModelError(f"unknown hidden activation {self.hidden_activation!r}")
        if self.classes < 2:
            raise ModelError(f"classes must be at least 2, got {self.classes}")
        if self.binary_units not in BINARY_MODES:
            raise ModelError(f"unknown binary_units {self.binary_units!r}; choose from "
                             f"{list(BINARY_MODES)}")
        if self.binary_units != "none" and self.convs[-1].activation != "sigmoid":
            raise ModelError("binary_units thresholds units at 0.5 and needs a sigmoid last "
                             f"conv layer, not {self.convs[-1].activation!r}")

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-able data (fields at their defaults added later omitted).

        Returns
        -------
        dict
        """
        d = asdict(self)
        d["convs"] = [asdict(c) for c in self.convs]
        # Fields added later are written only when set, so older specs stay byte-identical.
        if d.get("binary_units") == "none":
            del d["binary_units"]
        if not d.get("filter_mask"):
            d.pop("filter_mask", None)
        return d

    def to_json(self) -> str:
        """The spec as JSON text with sorted keys (what a checkpoint stores).

        Returns
        -------
        str
        """
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ModelSpec":
        """The spec written by :meth:`to_dict`.

        Parameters
        ----------
        d : mapping
            Must hold ``"convs"``, a list of :class:`ConvSpec` fields.

        Returns
        -------
        ModelSpec

        Raises
        ------
        ModelError
            Missing or unknown fields, or invalid values.
        """
        try:
            convs = tuple(ConvSpec(**c) for c in d["convs"])
            rest = {k: v for k, v in d.items() if k != "convs"}
            for key in ("input_shape", "hidden"):
                if key in rest:
                    rest[key] = tuple(rest[key])
            return cls(convs=convs, **rest)
        except (KeyError, TypeError) as exc:
            raise ModelError(f"invalid model spec: {exc}") from None


PAPER_SPECS: dict[str, ModelSpec] = {
    # Tsukimoto & Sato 2018, configuration 1: one 27x27 conv, 2x2 max-pool -> 10 units.
    "paper1": ModelSpec(convs=(ConvSpec(10, 27),), name="paper1"),
    # Configuration 2 of the paper (called paper3 here: three conv layers).
    "paper3": ModelSpec(convs=(ConvSpec(10, 8), ConvSpec(10, 7), ConvSpec(10, 14)),
                        name="paper3"),
}
PAPER_ITERATIONS = {"paper1": 10_000, "paper3": 15_000}
PAPER_FIGURES = {
    "paper1": {"network_accuracy": 0.939, "rule_accuracy": 0.959},
    "paper3": {"network_accuracy": 0.986, "rule_accuracy": 0.899},
}


def named_spec(name: str) -> ModelSpec:
    """The spec called ``name`` (``paper1`` or ``paper3``).

    Parameters
    ----------
    name : str

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelError
        Not a known name.
    """
    try:
        return PAPER_SPECS[name]
    except KeyError:
        raise ModelError(f"unknown architecture {name!r}; known: {sorted(PAPER_SPECS)}") from None


def spec_from_arg(arg: str) -> ModelSpec:
    """A spec from a CLI argument: a name, a JSON file, or inline JSON.

    Parameters
    ----------
    arg : str

    Returns
    -------
    ModelSpec

    Raises
    ------
    ModelError
        Neither a known name nor an existing file nor inline JSON, or an invalid spec.
    """
    if arg in PAPER_SPECS:
        return PAPER_SPECS[arg]
    text = arg
    if not arg.lstrip().startswith("{"):
        p = Path(arg)
        if not p.is_file():
            raise ModelError(
                f"unknown architecture {arg!r}: not one of {sorted(PAPER_SPECS)}, "
                "not a spec file, not inline JSON"
            )
        text = p.read_text(encoding="utf-8")
    try:
        return ModelSpec.from_dict(json.loads(text))
    except json.JSONDecodeError as exc:
        raise ModelError(f"model spec {arg!r} is not valid JSON: {exc}") from None


class SpecCNN(nn.Sequential):
    """The network a :class:`ModelSpec` describes (an ``nn.Sequential`` with named layers).

    Parameters
    ----------
    spec : ModelSpec
        Kept as the ``spec`` attribute (what :func:`save_checkpoint` stores).

    Raises
    ------
    ModelError
        A conv or pooling layer leaves no output for the spec's input shape.
    """

    def __init__(self, spec: ModelSpec) -> None:
        layers: list[tuple[str, nn.Module]] = []
        c, h, w = spec.input_shape
        for i, conv in enumerate(spec.convs, 1):
            layers.append((f"conv{i}", nn.Conv2d(c, conv.filters, conv.size, conv.stride,
                                                  conv.padding)))
            if conv.batchnorm:
                layers.append((f"bn{i}", nn.BatchNorm2d(conv.filters)))
            layers.append((f"act{i}", ACTIVATIONS[conv.activation]()))
            if spec.filter_mask and i == len(spec.convs):
                layers.append(("mask", InterpretableMask()))
            c = conv.filters
            h = (h + 2 * conv.padding - conv.size) // conv.stride + 1
            w = (w + 2 * conv.padding - conv.size) // conv.stride + 1
            if h < 1 or w < 1:
                raise ModelError(f"conv{i} leaves no output: input too small for size {conv.size}")
        if spec.pool == "max":
            layers.append(("pool", nn.MaxPool2d(spec.pool_size, spec.pool_size)))
            h, w = h // spec.pool_size, w // spec.pool_size
        elif spec.pool == "avg":
            layers.append(("pool", nn.AvgPool2d(spec.pool_size, spec.pool_size)))
            h, w = h // spec.pool_size, w // spec.pool_size
        elif spec.pool == "global-max":
            layers.append(("pool", nn.AdaptiveMaxPool2d(1)))
            h = w = 1
        elif spec.pool == "global-avg":
            layers.append(("pool", nn.AdaptiveAvgPool2d(1)))
            h = w = 1
        if h < 1 or w < 1:
            raise ModelError(f"pooling of size {spec.pool_size} leaves no output")
        if spec.binary_units != "none":
            layers.append(("binarize", BinaryUnits(spec.binary_units)))
        layers.append(("flatten", nn.Flatten()))
        width = c * h * w
        for j, units in enumerate(spec.hidden, 1):
            layers.append((f"hidden{j}", nn.Linear(width, units)))
            layers.append((f"hidden_act{j}", ACTIVATIONS[spec.hidden_activation]()))
            width = units
        layers.append(("out", nn.Linear(width, spec.classes)))
        super().__init__(OrderedDict(layers))
        self.spec = spec

    def __getitem__(self, idx):  # a slice is a plain Sequential: it has no spec of its own
        if isinstance(idx, slice):
            return nn.Sequential(OrderedDict(list(self._modules.items())[idx]))
        return super().__getitem__(idx)


def build_model(spec: ModelSpec | str, seed: int | None = None) -> SpecCNN:
    """Build (and, with ``seed``, deterministically initialise) the network for ``spec``.

    Parameters
    ----------
    spec : ModelSpec or str
        A spec, or anything :func:`spec_from_arg` reads.
    seed : int, optional
        Seeds torch's global generator before the layers are initialised.

    Returns
    -------
    SpecCNN

    Raises
    ------
    ModelError
        An invalid spec.
    """
    if isinstance(spec, str):
        spec = spec_from_arg(spec)
    if seed is not None:
        torch.manual_seed(seed)
    return SpecCNN(spec)


def save_checkpoint(model: SpecCNN, path: str | os.PathLike[str],
                    extra: Mapping[str, str] | None = None, logic: str | None = None) -> None:
    """Write weights + spec as a safetensors file, atomically.

    Parameters
    ----------
    model : SpecCNN
    path : path
    extra : mapping of str to str, optional
        More metadata to store beside the spec.  (safetensors writes several metadata
        entries in an arbitrary order: a file with ``extra`` is not byte-deterministic.)
    logic : str, optional
        A tuned network's logic layers (:func:`cnn2logic.model.logic_head.logic_info`),
        stored inside the spec JSON as ``"logic"`` so the file stays byte-deterministic.
    """
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    spec_json = model.spec.to_json()
    if logic is not None:
        spec_json = json.dumps({**model.spec.to_dict(), "logic": json.loads(logic)},
                               sort_keys=True)
    metadata = {CHECKPOINT_SPEC_KEY: spec_json}
    metadata.update(extra or {})
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def load_checkpoint(path: str | os.PathLike[str]) -> SpecCNN:
    """Load a checkpoint written by :func:`save_checkpoint` (or a weights-only ``.pt``).

    Parameters
    ----------
    path : path

    Returns
    -------
    SpecCNN
        In eval mode.

    Raises
    ------
    CheckpointError
        The file is missing, corrupt, has no spec, or its weights do not fit the spec.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    state, spec_json = _read_checkpoint(p)
    try:
        d = json.loads(spec_json)
        logic = d.pop("logic", None) if isinstance(d, dict) else None
        spec = ModelSpec.from_dict(d)
    except (json.JSONDecodeError, ModelError, TypeError) as exc:
        raise CheckpointError(f"{p}: model spec in checkpoint is invalid: {exc}") from None
    model = SpecCNN(spec)
    if logic is not None:  # a tuned network (cnn2logic.model.tuning): its logic layers
        try:
            apply_logic_layers(model, json.dumps(logic), state)
        except ModelError as exc:
            raise CheckpointError(f"{p}: {exc}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise CheckpointError(f"{p}: weights do not fit the spec: {first}") from None
    model.eval()
    return model


def read_safetensors(p: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """The tensors and string metadata of a safetensors file (nothing else can be in one).

    Raises
    ------
    CheckpointError
        Not a readable safetensors file.
    """
    try:
        with safe_open(str(p), framework="pt") as fh:
            metadata = dict(fh.metadata() or {})
            state = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{p}: corrupt or not a safetensors file "
                              f"({exc.__class__.__name__})") from None
    return state, metadata


def read_weights_only(p: Path, refusal: str = "not a readable weights-only checkpoint",
                      advice: str = "") -> Any:
    """What a ``torch.save`` file holds, read with ``weights_only=True`` (tensors and plain
    containers; nothing is unpickled beyond them).  ``refusal`` and ``advice`` word the
    error for the caller.

    Raises
    ------
    CheckpointError
        Unreadable, or it holds objects ``weights_only`` refuses.
    """
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or unsafe archives
        raise CheckpointError(f"{p}: {refusal} ({exc.__class__.__name__}){advice}") from None


def _read_checkpoint(p: Path) -> tuple[dict[str, torch.Tensor], str]:
    with open(p, "rb") as fh:
        head = fh.read(8)
    if p.suffix in (".pt", ".pth") or head[:2] == b"PK":
        obj = read_weights_only(p)
        if not isinstance(obj, dict) or "state_dict" not in obj or "spec" not in obj:
            raise CheckpointError(f"{p}: expected a dict with 'state_dict' and 'spec'")
        return dict(obj["state_dict"]), str(obj["spec"])
    state, metadata = read_safetensors(p)
    if CHECKPOINT_SPEC_KEY not in metadata:
        raise CheckpointError(f"{p}: checkpoint has no cnn2logic model spec")
    return state, metadata[CHECKPOINT_SPEC_KEY]


def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Logits for ``images`` in batches, without gradients (the model is put in eval mode).

    Parameters
    ----------
    model : nn.Module
    images : torch.Tensor
        ``(n, channels, height, width)``.
    batch_size : int

    Returns
    -------
    torch.Tensor
        ``(n, classes)``; empty for no images.
    """
    model.eval()
    outs = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            outs.append(model(images[start:start + batch_size]))
    return torch.cat(outs) if outs else torch.empty(0)


def layer_names(model: nn.Module) -> Sequence[str]:
    """The names of every submodule of ``model`` (``named_modules`` without the root).

    Parameters
    ----------
    model : nn.Module

    Returns
    -------
    list of str
    """
    return [name for name, _ in model.named_modules() if name]
