"""``cnn2logic tune``: fine-tune a trained CNN so that its decision is a compact program.

The model options are ``extract``'s (``--factory``, ``--factory-kwargs``,
``--trust-model-file``, ``--layer``, ``--output``); the recipe is
:func:`cnn2logic.model.tuning.tune_model`.  The tuned checkpoint is an ordinary one (a spec
net's checkpoint, or for ``--factory`` a state dict naming its factory): ``cnn2logic
extract TUNED`` (with the same ``--factory``; it finds the tuned layers itself) reads the
program off the network, fidelity 1.0.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._io import atomic_write_text, check_parents, refuse_overwriting_inputs
from ..errors import ModelError
from ..model import metrics_json, parse_factory_kwargs
from ..model.layers import AUTO
from ..model.spec import SpecCNN
from ..model.tune_setup import POSITION_UP_TO
from ..model.tuning import MAP_BITS, TARGETS, WARM_HEADS, TuneConfig, save_tuned, tune_model
from ._common import (add_progress_arg, non_negative_int, note_found_layers, positive_float,
                      positive_int)
from ._data_args import add_data_args, data_from_args
from ._model_args import add_model_args, model_from_args
from .train import metrics_file

_DEFAULTS = TuneConfig()
#: A tuned network this much less accurate than the original gets a warning.
LARGE_DROP = 0.05


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``tune`` subcommand.

    Parameters
    ----------
    sub : argparse._SubParsersAction
        The ``cnn2logic`` subparsers.
    """
    p = sub.add_parser("tune", help="fine-tune a trained CNN to decide by a compact program",
                       description="Fine-tune a trained model so that its decision goes "
                                   "through binary kernel units and an ordered rule list "
                                   "(at most --max-rules rules, --max-literals literals); "
                                   "writes a checkpoint and a metrics JSON beside it.")
    p.add_argument("model", help="checkpoint written by 'cnn2logic train' (or, with "
                                 "--factory, any state dict)")
    add_model_args(p)
    p.add_argument("--out", required=True, help="tuned checkpoint path (.safetensors)")
    add_data_args(p)
    p.add_argument("--layer", default=AUTO,
                   help="layer whose kernels become the bits (one value per kernel; default "
                        "'auto': a spec net's 'pool', else the last map after the last "
                        "convolution, e.g. 'avgpool')")
    p.add_argument("--output", default=AUTO,
                   help="linear layer reading them, replaced by the rule list (default "
                        "'auto': the first linear layer after --layer); the layers after "
                        "it, e.g. the rest of a Linear-ReLU-Linear head, are skipped")
    p.add_argument("--iterations", type=positive_int, default=_DEFAULTS.iterations,
                   help=f"fine-tuning steps in all (default {_DEFAULTS.iterations})")
    p.add_argument("--batch-size", type=positive_int, default=_DEFAULTS.batch_size)
    p.add_argument("--lr", type=positive_float, default=_DEFAULTS.lr)
    p.add_argument("--max-rules", type=positive_int, default=_DEFAULTS.max_rules)
    p.add_argument("--max-literals", type=positive_int, default=_DEFAULTS.max_literals)
    p.add_argument("--max-rule-literals", type=positive_int, default=None,
                   help="at most this many literals in any one rule (default: 16 on a bit "
                        "per map position, else 8 in a conjunction and 40 in an M-of-N rule)")
    p.add_argument("--warm-share", type=float, default=_DEFAULTS.warm_share,
                   help="share of the steps with straight-through bits and the linear head "
                        "before the rule list takes over (0..1)")
    p.add_argument("--distill", type=float, default=_DEFAULTS.distill,
                   help="weight of the distillation from the original outputs (0..1)")
    p.add_argument("--rounds", type=positive_int, default=_DEFAULTS.rounds,
                   help="rounds of training against the list, refitted after each")
    p.add_argument("--target", choices=TARGETS, default=_DEFAULTS.target,
                   help="what the rule list is fitted to")
    p.add_argument("--max-kernels", type=non_negative_int, default=_DEFAULTS.max_kernels,
                   help="on a wider layer, make the decision read only this many kernels "
                        f"(default {_DEFAULTS.max_kernels}; 0: all)")
    p.add_argument("--class-kernels", type=non_negative_int, default=_DEFAULTS.class_kernels,
                   help="while training on bits, each class reads only its this many "
                        f"strongest kernels (default {_DEFAULTS.class_kernels}; 0: all)")
    p.add_argument("--bit-noise", type=float, default=_DEFAULTS.bit_noise,
                   help="noise (in units of each unit's spread) added before the thresholds "
                        f"in training, for bits that generalise (default {_DEFAULTS.bit_noise})")
    p.add_argument("--levels", type=positive_int, default=_DEFAULTS.levels,
                   help="thresholds per kernel: more than 1 gives each kernel a thermometer "
                        f"code of that many bits (default {_DEFAULTS.levels})")
    p.add_argument("--map-bits", choices=MAP_BITS, default=_DEFAULTS.map_bits,
                   help="when the output layer reads the kernels' maps flattened: a bit per "
                        "map position (k3_r1c2), per kernel (the max of its map), or auto "
                        f"(by position up to {POSITION_UP_TO} values; default "
                        f"{_DEFAULTS.map_bits})")
    p.add_argument("--warm-head", choices=WARM_HEADS, default=_DEFAULTS.warm_head,
                   help="head of the straight-through phase: the original output layer, "
                        "it plus a small ReLU network on the bits, or its weights made "
                        "ternary (each class counts bits, as an M-of-N rule does)")
    p.add_argument("--seed", type=int, default=0)
    add_progress_arg(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Tune the model and write the checkpoint and its metrics.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed ``tune`` options.

    Returns
    -------
    int
        Exit code 0.

    Raises
    ------
    Cnn2LogicError
        Bad model, layers, data or option, or a collapse (the CLI exits 2).
    """
    out = Path(args.out)
    if out.is_dir():
        raise ModelError(f"--out {args.out} is a directory; give the checkpoint's file name, "
                         f"e.g. {out / 'tuned.safetensors'}")
    check_parents(out)
    refuse_overwriting_inputs([out, metrics_file(out)], [args.model])
    config = TuneConfig(iterations=args.iterations, batch_size=args.batch_size, lr=args.lr,
                        warm_share=args.warm_share, distill=args.distill, rounds=args.rounds,
                        max_rules=args.max_rules, max_literals=args.max_literals,
                        max_rule_literals=args.max_rule_literals, target=args.target,
                        max_kernels=args.max_kernels,
                        class_kernels=args.class_kernels, bit_noise=args.bit_noise,
                        levels=args.levels, map_bits=args.map_bits, warm_head=args.warm_head,
                        seed=args.seed,
                        progress=args.progress)
    kwargs = parse_factory_kwargs(args.factory_kwargs) if args.factory else None
    model = model_from_args(args)
    if not args.factory and not isinstance(model, SpecCNN):
        raise ModelError("only a cnn2logic checkpoint or a --factory model can be tuned into a "
                         "checkpoint that rebuilds it; give --factory for this model file")
    data = data_from_args(args, "cnn2logic tune")
    tuned, metrics = tune_model(model, data, args.layer, args.output, config)
    if AUTO in (args.layer, args.output):
        note_found_layers(model, metrics["layer"], metrics["output"], metrics["bypassed"])
    save_tuned(tuned, out, layer=metrics["layer"], output=metrics["output"],
               factory=args.factory, factory_kwargs=kwargs)
    if args.factory:
        metrics["factory"], metrics["factory_kwargs"] = args.factory, kwargs
    metrics_path = metrics_file(out)
    atomic_write_text(metrics_path, metrics_json(metrics))
    print(f"test accuracy {metrics['original_test_accuracy']:.4f} -> "
          f"{metrics['test_accuracy']:.4f} deciding by {metrics['rules']} rules, "
          f"{metrics['literals']} literals ({metrics['iterations']} iterations, "
          f"{metrics['seconds']:.1f} s)")
    drop = metrics["original_test_accuracy"] - metrics["test_accuracy"]
    if drop > LARGE_DROP:
        # written all the same (it is what was asked for), but not silently
        # (a bit per map position has one level: --levels would be refused)
        levels = "" if metrics.get("bits_of") == "position" else " or --levels 3"
        print(f"cnn2logic tune: warning: the tuned network is {drop:.3f} less accurate than "
              "the original; more --iterations, a larger --max-rules / --max-literals"
              f"{levels} may help (docs/logic_training.md)", file=sys.stderr)
    again = f" --factory {args.factory}" if args.factory else ""
    if args.factory and args.factory_kwargs:
        again += f" --factory-kwargs '{json.dumps(kwargs, sort_keys=True)}'"
    print(f"wrote {out} and {metrics_path}; 'cnn2logic extract {out}{again} --out DIR' "
          "reads the program")
    return 0
