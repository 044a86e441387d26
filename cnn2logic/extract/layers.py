"""What the extraction driver and the methods read from a model and its data.

:class:`ModelInputs` is one extraction's model, data and settings, with the network's
predictions and the captured kernel units the methods share; the functions read the
model's layers: the linear output layer (:func:`output_layer`), the layers chaining
walks (:func:`default_chain`, :func:`spatial_size`, :func:`linear_into`) and whether the
output layer reads a layer directly (:func:`reads_directly`).

Example
-------
>>> import torch
>>> net = torch.nn.Sequential()
>>> net.add_module("pool", torch.nn.Flatten()); net.add_module("out", torch.nn.Linear(3, 2))
>>> [a.shape for a in output_layer(net, "out", 3)]
[(2, 3), (2,)]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import DataSplits, ImageSet
from ..errors import ExtractionError, ModelError
from ..evaluate import binarized_network_accuracy
from ..model.layers import forward_calls
from ..model.spec import predict_logits
from ..rules import Head
from ..units import BinaryCodes, KernelUnits, capture, capture_split, fit_binarisation
from .base import Outcome
from .rest import LEVEL_IMAGES, layer_calls, network_on_bits, replaced_layers


def output_layer(model: nn.Module, name: str, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights and bias of the linear layer ``name`` fed directly by ``n_units`` kernel units.

    Returns
    -------
    (weight, bias) : float64 arrays of shapes (classes, n_units) and (classes,)

    Raises
    ------
    ModelError
        No such layer, not linear, or its inputs are not the kernel units.
    """
    modules = dict(model.named_modules())
    if name not in modules or not name:
        raise ModelError(f"no layer named {name!r}; layers: {', '.join(n for n in modules if n)}")
    layer = modules[name]
    if not isinstance(layer, nn.Linear):
        raise ModelError(f"output layer {name!r} is {type(layer).__name__}, not nn.Linear")
    if layer.in_features != n_units:
        raise ModelError(
            f"output layer {name!r} has {layer.in_features} inputs but the captured layer "
            f"gives {n_units} kernel units; rules over kernel units need the output layer to "
            "read exactly one pooled value per kernel"
        )
    W = layer.weight.detach().double().numpy()
    b = (layer.bias.detach().double().numpy() if layer.bias is not None
         else np.zeros(layer.out_features))
    return W, b


@dataclass
class BinaryInputs:
    """A learned method's inputs: ``config.layer``'s units binarised by ``thresholds``.

    ``W, b`` is the output layer when it reads these units (else ``None``), ``heads``
    one per class.
    """

    units: KernelUnits
    W: np.ndarray | None
    b: np.ndarray | None
    heads: tuple[Head, ...]
    thresholds: Any
    bits_tr: np.ndarray
    bits_te: np.ndarray
    rest: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelInputs:
    """One extraction's model, data and settings, and what the methods share of them.

    ``classes`` are the class names (``class_names`` or the data's); the network's
    predictions are computed once, on first use.  In-memory splits
    (:class:`~cnn2logic.data.ImageSet`) are read as tensors; streamed ones
    (:class:`~cnn2logic.data.StreamSet`, an image folder or a Dataset) batch by batch,
    and their predictions come from the first capture's pass over them, so the images
    are never all in memory (``x_tr`` / ``x_te`` are then lazy views).
    """

    model: nn.Module
    data: DataSplits
    config: Any
    progress: bool = True
    class_names: tuple[str, ...] | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names to use (``class_names``, else the training split's)."""
        return tuple(self.class_names or self.data.train.classes)

    def _split(self, which: str) -> Any:
        return self.data.train if which == "tr" else self.data.test

    def _value(self, name: str) -> Any:
        kind, which = name.rsplit("_", 1)
        split = self._split(which)
        if name in self._cache:
            return self._cache[name]
        if kind == "labels":
            value: Any = np.asarray(split.labels, dtype=np.int64)
        elif isinstance(split, ImageSet):
            x = split.tensors()[0]
            value = x if kind == "x" else predict_logits(self.model, x).argmax(1).numpy()
        elif kind == "x":
            return split.images  # lazy: loads only what is indexed
        else:
            value = predict_split(self.model, split)
        self._cache[name] = value
        return value

    def __getattr__(self, name: str) -> Any:
        # x_tr, x_te, labels_tr, labels_te, pred_tr, pred_te: computed on first use.
        if name in ("x_tr", "x_te", "labels_tr", "labels_te", "pred_tr", "pred_te"):
            return self._value(name)
        raise AttributeError(name)

    @property
    def target_tr(self) -> np.ndarray:
        """What the learned methods fit: the predictions or the labels (``config.target``)."""
        return self.pred_tr if self.config.target == "prediction" else self.labels_tr

    def grab(self, layer: str, reduce: str) -> tuple[np.ndarray, np.ndarray, KernelUnits]:
        """Kernel units of ``layer`` on the training and test images, and the training ones.

        Chaining's units carry layer-qualified names (``act1.k3``): its layers' names
        must not collide.
        """
        qualified = self.config.method == "chaining"
        out = []
        for which in ("tr", "te"):
            split = self._split(which)
            if isinstance(split, ImageSet):
                out.append(capture(self.model, layer, self._value(f"x_{which}"), reduce=reduce,
                                   progress=self.progress, qualified_names=qualified))
                continue
            units, preds = capture_split(self.model, layer, split, reduce=reduce,
                                         progress=self.progress, qualified_names=qualified)
            self._cache.setdefault(f"pred_{which}", preds)
            out.append(units)
        return out[0].values, out[1].values, out[0]

    def output_or_none(self, n_units: int, required: bool
                       ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The output layer over ``n_units`` units, or ``(None, None)`` unless ``required``.

        Raises
        ------
        ModelError
            ``required`` and the output layer does not fit.
        """
        try:
            return output_layer(self.model, self.config.output, n_units)
        except ModelError:
            if required:
                raise
            return None, None

    def heads(self, W: np.ndarray | None) -> tuple[Head, ...]:
        """One head per class: the output layer's rows, else the classes seen."""
        classes = self.classes
        n_classes = W.shape[0] if W is not None else max(len(classes),
                                                         int(self.pred_tr.max()) + 1)
        if len(classes) != n_classes:
            classes = tuple(str(c) for c in range(n_classes))
        return tuple(Head(name, "class", self.config.output, i)
                     for i, name in enumerate(classes))

    def codes(self, bits_tr: np.ndarray, bits_te: np.ndarray, variables,
              heads: tuple[Head, ...]) -> tuple[BinaryCodes, BinaryCodes]:
        """Training and test :class:`BinaryCodes` of a learned method's bits."""
        classes = tuple(h.name for h in heads)
        train = BinaryCodes(bits_tr, tuple(variables), classes, self.labels_tr, self.pred_tr,
                            tuple(f"train{i}" for i in range(len(self.labels_tr))))
        test = BinaryCodes(bits_te, tuple(variables), classes, self.labels_te, self.pred_te,
                           tuple(f"img{i}" for i in range(len(self.labels_te))))
        return train, test

    def binarized_accuracy(self, W: np.ndarray | None, b: np.ndarray | None,
                           bits_te: np.ndarray) -> float | None:
        """The output layer's test accuracy on ``bits_te``, None where it does not read them.

        The output layer may not read these units (e.g. ERIC on a conv map below the
        pooling, or torchvision's ``avgpool`` + ``fc``): applying it to their bits would
        measure nothing; :meth:`rest_of_network` measures the rest of the network instead.
        """
        if W is None or not reads_directly(self.model, self.config.layer, self.config.output):
            return None
        if self._cache.get("rest", {}).get("output_reads_units") is False:
            return None
        return binarized_network_accuracy(W, b, bits_te, self.labels_te)[0]

    def rest_of_network(self, thresholds: np.ndarray | None = None) -> dict[str, Any]:
        """What the rules over ``config.layer`` replace (:mod:`cnn2logic.extract.rest`).

        ``layer_calls``: how many times the layer runs per forward pass (its last call is
        captured); ``replaces``: the modules after it; ``output_reads_units``: whether
        only flattening lies between it and the linear ``config.output``.  Unless it does,
        and given the ``thresholds``, ``network_on_bits`` is the rest of the network run
        on the binarised units (fidelity and accuracy on the test images).

        Raises
        ------
        ModelError
            ``config.layer`` does not run in the forward pass.
        ActivationError
            The thresholds do not fit the layer.
        """
        config = self.config
        sample = self.x_tr[:1]
        replaced = replaced_layers(self.model, config.layer, sample)
        modules = dict(self.model.named_modules())
        steps = [n for n in replaced if not isinstance(modules[n], (nn.Flatten, nn.Identity))]
        direct = steps == [config.output] and isinstance(modules.get(config.output), nn.Linear)
        info: dict[str, Any] = {"layer": config.layer,
                                "layer_calls": layer_calls(self.model, config.layer, sample),
                                "replaces": replaced, "output_reads_units": direct}
        self._cache["rest"] = info
        if direct or thresholds is None or config.reduce == "position":
            return info
        fit = _spread(self.data.train.images, LEVEL_IMAGES)
        info["network_on_bits"] = network_on_bits(
            self.model, config.layer, config.reduce, thresholds, fit,
            _images(self.data.test.batches()), self.pred_te, self.labels_te,
            calls=info["layer_calls"])
        return info


def _spread(images, limit: int, size: int = 250):
    """Up to ``limit`` images evenly spread over ``images`` (an array or a split's lazy
    view), in batches of ``size``: a class-sorted image folder's first images would all be
    of one class."""
    n = len(images)
    idx = np.unique(np.linspace(0, n - 1, min(n, limit)).astype(np.int64))
    for s in range(0, len(idx), size):
        xb = images[idx[s:s + size]]
        yield torch.from_numpy(np.asarray(xb)) if not isinstance(xb, torch.Tensor) else xb


def _images(batches, limit: int | None = None):
    """The image tensors of ``(images, labels)`` batches, the first ``limit`` images only
    (a generator: one batch in memory at a time, as the capture streams them)."""
    seen = 0
    for xb, _ in batches:
        if limit is not None and seen >= limit:
            return
        xb = xb if limit is None else xb[:limit - seen]
        seen += len(xb)
        yield xb


def predict_split(model: nn.Module, split: Any) -> np.ndarray:
    """The network's predicted class of every image of ``split``, batch by batch.

    Parameters
    ----------
    model : nn.Module
        Returns ``(n, classes)`` scores.
    split : ImageSet or StreamSet
        Anything with ``batches()``.

    Returns
    -------
    np.ndarray
        int64 class indices.
    """
    was = model.training
    model.eval()
    preds = []
    try:
        with torch.no_grad():
            for xb, _ in split.batches():
                preds.append(model(xb).argmax(1).numpy().astype(np.int64))
    finally:
        model.train(was)
    return np.concatenate(preds) if preds else np.zeros(0, np.int64)


def binarise(inputs: "ModelInputs", threshold: str | Any) -> BinaryInputs:
    """``inputs.config.layer`` captured, reduced and binarised with ``threshold`` (any of
    :data:`cnn2logic.units.BINARISATIONS`, fitted on the training images against
    ``inputs.target_tr``), or with the name ``threshold(training units)`` returns: the
    common first step of the learned methods on bits.

    Raises
    ------
    ModelError
        ``config.layer`` does not exist.
    ActivationError
        The binarisation cannot apply to these units.
    """
    config = inputs.config
    U_tr, U_te, units = inputs.grab(config.layer, config.reduce)
    W, b = inputs.output_or_none(U_tr.shape[1], required=False)
    if callable(threshold):  # a method's own choice, made on the training units
        threshold = threshold(U_tr)
    th = fit_binarisation(U_tr, threshold, inputs.target_tr, alpha=config.alpha,
                          gamma=config.gamma)
    # what the rules replace, and the rest of the network on these bits: measured here,
    # with the other forward passes (the driver times this step as the capture)
    rest = inputs.rest_of_network(th.values)
    return BinaryInputs(units, W, b, inputs.heads(W), th, th.apply(U_tr), th.apply(U_te),
                        rest)


def learned_outcome(inputs: "ModelInputs", bin_: BinaryInputs, rules: Any,
                    meta: dict[str, Any]) -> Outcome:
    """The :class:`~cnn2logic.extract.base.Outcome` of a learned method fitted on
    ``bin_``'s bits (ranked against ``inputs.target_tr``, its own default); its meta
    says what the rules replace (``rest_of_network``, :meth:`ModelInputs.rest_of_network`).
    """
    train, test = inputs.codes(bin_.bits_tr, bin_.bits_te, bin_.units.variables, bin_.heads)
    rest = bin_.rest or inputs.rest_of_network(bin_.thresholds.values)
    return Outcome(rules, train, test, inputs.target_tr, rules.default,
                   inputs.binarized_accuracy(bin_.W, bin_.b, bin_.bits_te),
                   thresholds_meta(bin_.thresholds), meta={**meta, "rest_of_network": rest})


def bits_fit_args(inputs: "ModelInputs", bin_: BinaryInputs) -> dict[str, Any]:
    """``extractor.fit``'s arguments for a learned method on ``bin_``'s training bits."""
    return {"X": bin_.bits_tr, "y": inputs.target_tr, "output": None,
            "variables": bin_.units.variables, "heads": bin_.heads}


def thresholds_meta(th, **params: Any) -> dict[str, Any]:
    """A fitted :class:`~cnn2logic.units.Thresholds` as stored in the rules file's meta."""
    return {"method": th.method, "params": {**th.params, **params},
            "values": [round(float(v), 8) for v in th.values]}


def default_chain(model: nn.Module) -> tuple[str, ...]:
    """The layers to chain for a :class:`~cnn2logic.model.spec.SpecCNN`, lowest first.

    Hidden fully connected layers: ``pool, hidden_act1, ...``; otherwise every conv
    layer's activation below the last, then ``pool`` (``paper3``: act1, act2, pool).

    Raises
    ------
    ExtractionError
        The model is not a SpecCNN (name the layers explicitly) or has nothing to chain.
    """
    spec = getattr(model, "spec", None)
    if spec is None:
        raise ExtractionError("cannot guess the layers to chain for this model; "
                              "give them explicitly (--chain-layers a,b,c)")
    if spec.hidden:
        return ("pool",) + tuple(f"hidden_act{j}" for j in range(1, len(spec.hidden) + 1))
    if len(spec.convs) < 2:
        raise ExtractionError(f"{spec.name} has one conv layer and no hidden layer: there is "
                              "nothing to chain; use another method")
    return tuple(f"act{i}" for i in range(1, len(spec.convs))) + ("pool",)


def spatial_size(model: nn.Module, layer: str, sample) -> int:
    """Positions per kernel in ``layer``'s output (1 for (n, c) outputs).

    Raises
    ------
    ModelError
        No such layer.
    """
    modules = dict(model.named_modules())
    if layer not in modules or not layer:
        raise ModelError(f"no layer named {layer!r}; layers: "
                         f"{', '.join(n for n in modules if n)}")
    s = next((c.shape for c in forward_calls(model, sample) if c.name == layer), None)
    if s is None:
        raise ModelError(f"layer {layer!r} does not run in the model's forward pass")
    return int(np.prod(s[2:])) if len(s) == 4 else 1


def reads_directly(model: nn.Module, layer: str, output: str) -> bool:
    """Whether ``output`` reads ``layer``'s units with only a flatten between them.

    Unknown when the layers are not direct children in order (any CNN): then True, as the
    approximation path assumes whenever the sizes match.
    """
    names = [n for n, _ in model.named_children()]
    if layer not in names or output not in names:
        return True
    children = dict(model.named_children())
    between = names[names.index(layer) + 1:names.index(output)]
    return all(isinstance(children[n], nn.Flatten) for n in between)


def linear_into(model: nn.Module, below: str, layer: str, n_below: int,
                thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(W, b')`` when ``layer`` = activation(Linear(flatten(below))), else None.

    ``b'`` folds each unit's binarisation threshold into the bias (``act(z) >= t`` iff
    ``z >= act^-1(t)``), so the unit is on exactly when ``W x + b' >= 0``.
    """
    children = list(model.named_children())
    names = [n for n, _ in children]
    if below not in names or layer not in names:
        return None
    i, j = names.index(below), names.index(layer)
    between = [m for _, m in children[i + 1:j]]
    if not between or not isinstance(between[-1], nn.Linear):
        return None
    if any(not isinstance(m, nn.Flatten) for m in between[:-1]):
        return None
    lin, act = between[-1], children[j][1]
    if lin.in_features != n_below:
        return None
    W = lin.weight.detach().double().numpy()
    b = (lin.bias.detach().double().numpy() if lin.bias is not None
         else np.zeros(lin.out_features))
    inv = _inverse_activation(act, np.asarray(thresholds, dtype=np.float64))
    return None if inv is None else (W, b - inv)


def _inverse_activation(act: nn.Module, t: np.ndarray) -> np.ndarray | None:
    """The pre-activation thresholds ``act^-1(t)``, None where they do not exist."""
    if isinstance(act, nn.Sigmoid):
        if ((t <= 0) | (t >= 1)).any():
            return None
        return np.log(t / (1 - t))
    if isinstance(act, nn.Tanh):
        if (np.abs(t) >= 1).any():
            return None
        return np.arctanh(t)
    if isinstance(act, nn.Identity):
        return t
    if isinstance(act, nn.ReLU):
        if (t <= 0).any():
            return None  # relu(z) >= t <= 0 holds always: not a threshold on z
        return t
    return None
