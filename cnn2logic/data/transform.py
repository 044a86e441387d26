"""The preprocessing a user's images get before the network sees them.

:class:`ImageTransform` holds ``--resize``, ``--center-crop``, ``--mean/--std`` and
``--channels``; it applies to a PIL image (an image folder, read with torchvision's
functional transforms) or to a batch of tensors (arrays, the embedded set, IDX files), and
:meth:`ImageTransform.to_meta` is what the rules file records.  Order: channels, resize,
centre crop, scale to [0, 1], normalise - torchvision's usual ``Resize``, ``CenterCrop``,
``ToTensor``, ``Normalize``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import DataError

# ITU-R 601-2 luma, the weights PIL's convert("L") uses: a colour array made grey here
# matches the same image made grey by PIL.
_LUMA = (0.299, 0.587, 0.114)


def _size_pair(value: Sequence[int] | int | None, option: str) -> tuple[int, int] | None:
    if value is None:
        return None
    vals = [value] if isinstance(value, int) else list(value)
    if len(vals) == 1:
        vals = vals * 2
    if len(vals) != 2 or any(not isinstance(v, int) or isinstance(v, bool) or v < 1
                             for v in vals):
        raise DataError(f"{option} takes one or two positive integers (height width), "
                        f"got {value!r}")
    return int(vals[0]), int(vals[1])


@dataclass(frozen=True)
class ImageTransform:
    """Resize, centre-crop, channel conversion and normalisation of every image.

    Parameters
    ----------
    resize : (int, int) or int, optional
        Exact ``(height, width)`` after resizing (one number: a square).
    center_crop : (int, int) or int, optional
        ``(height, width)`` cut from the centre after resizing.
    mean, std : sequence of float, optional
        Per-channel normalisation ``(x - mean) / std`` of [0, 1] images (one value:
        every channel).  Give both or neither.
    channels : {1, 3}, optional
        Convert every image to grey (1) or RGB (3); default: keep the images' own.

    Raises
    ------
    DataError
        Bad sizes, ``mean`` without ``std`` (or the reverse), a standard deviation that is
        not positive, or ``channels`` other than 1 and 3.
    """

    resize: tuple[int, int] | None = None
    center_crop: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channels: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "resize", _size_pair(self.resize, "--resize"))
        object.__setattr__(self, "center_crop", _size_pair(self.center_crop, "--center-crop"))
        if (self.mean is None) != (self.std is None):
            raise DataError("give both --mean and --std (normalisation needs both), or neither")
        if self.mean is not None:
            mean = tuple(float(v) for v in self.mean)
            std = tuple(float(v) for v in self.std)  # type: ignore[union-attr]
            if not mean or len(mean) != len(std):
                raise DataError(f"--mean has {len(mean)} values and --std {len(std)}: give "
                                "one value per channel (or one for all)")
            if any(not s > 0 or s != s or s == float("inf") for s in std):
                raise DataError(f"--std values must be positive numbers, got {list(std)}")
            if any(m != m or abs(m) == float("inf") for m in mean):
                raise DataError(f"--mean values must be finite numbers, got {list(mean)}")
            object.__setattr__(self, "mean", mean)
            object.__setattr__(self, "std", std)
        if self.channels not in (None, 1, 3):
            raise DataError(f"--channels must be 1 (grey) or 3 (RGB), got {self.channels}")

    @property
    def identity(self) -> bool:
        """True when the transform changes nothing."""
        return self == ImageTransform()

    def to_meta(self) -> dict[str, Any]:
        """The settings as JSON-ready lists (``None`` for what is not set)."""
        return {
            "resize": list(self.resize) if self.resize else None,
            "center_crop": list(self.center_crop) if self.center_crop else None,
            "mean": list(self.mean) if self.mean else None,
            "std": list(self.std) if self.std else None,
            "channels": self.channels,
        }

    def check_channels(self, channels: int, where: str) -> None:
        """Refuse ``mean``/``std`` whose length fits neither 1 nor ``channels`` channels.

        Raises
        ------
        DataError
        """
        if self.mean is not None and len(self.mean) not in (1, channels):
            raise DataError(f"{where}: images have {channels} channel(s) but --mean/--std "
                            f"give {len(self.mean)} values: give {channels} (or 1)")

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        """``(x - mean) / std`` over the channel axis (``x``: (c, h, w) or (n, c, h, w))."""
        if self.mean is None:
            return x
        shape = (-1, 1, 1)
        mean = torch.tensor(self.mean, dtype=torch.float32).reshape(shape)
        std = torch.tensor(self.std, dtype=torch.float32).reshape(shape)
        return (x - mean) / std

    def apply_pil(self, image: Any, where: str) -> torch.Tensor:
        """A PIL image (already in its final mode) -> float32 ``(c, h, w)`` tensor.

        Raises
        ------
        DataError
            The image is smaller than ``center_crop`` (torchvision would pad it with
            black silently).
        """
        from torchvision.transforms import functional as TF  # torchvision: image folders only

        if self.resize is not None:
            image = TF.resize(image, list(self.resize),
                              interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        if self.center_crop is not None:
            w, h = image.size
            if h < self.center_crop[0] or w < self.center_crop[1]:
                raise DataError(f"{where}: image of {h}x{w} (height x width) is smaller than "
                                f"--center-crop {self.center_crop[0]} {self.center_crop[1]}; "
                                "pass --resize H W first")
            image = TF.center_crop(image, list(self.center_crop))
        x = TF.pil_to_tensor(image).float() / 255.0
        return self.normalise(x)

    def apply_batch(self, x: torch.Tensor, where: str) -> torch.Tensor:
        """An ``(n, c, h, w)`` float batch in [0, 1] -> transformed (arrays, MNIST).

        Raises
        ------
        DataError
            Channel conversion of images that have neither 1 nor 3 channels, or images
            smaller than ``center_crop``.
        """
        c = x.shape[1]
        if self.channels is not None and self.channels != c:
            if c == 1:
                x = x.expand(-1, 3, -1, -1)
            elif c == 3:
                luma = torch.tensor(_LUMA, dtype=x.dtype).reshape(1, 3, 1, 1)
                x = (x * luma).sum(1, keepdim=True)
            else:
                raise DataError(f"{where}: cannot convert {c}-channel images to "
                                f"{self.channels} channels")
        if self.resize is not None and tuple(x.shape[2:]) != self.resize:
            x = F.interpolate(x, size=self.resize, mode="bilinear", align_corners=False,
                              antialias=True).clamp_(0.0, 1.0)
        if self.center_crop is not None:
            h, w = x.shape[2:]
            ch, cw = self.center_crop
            if h < ch or w < cw:
                raise DataError(f"{where}: images of {h}x{w} (height x width) are smaller "
                                f"than --center-crop {ch} {cw}; pass --resize H W first")
            top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
            x = x[:, :, top:top + ch, left:left + cw]
        return self.normalise(x).contiguous()
