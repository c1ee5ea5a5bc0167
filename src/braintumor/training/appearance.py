"""Appearance augmentation: what other scanners, sequences and exports do to a slice.

The Kaggle training images come from three sources with similar T1-weighted contrast, saved
as 8-bit JPEGs at 224 px; scans from elsewhere differ in intensity curve (gamma, window,
histogram), coil shading (bias field), resolution, pixel aspect, sharpness and noise. Each op
below imitates one of these on the whole batch at once, on the batch's device:

====================  =========================================================  ==========
op                    what it imitates                                            by
====================  =========================================================  ==========
bias field            receive-coil shading: a smooth multiplicative gain          hand
gamma                 another intensity curve (display or export gamma)           kornia
histogram shift       a monotone random contrast curve (MONAI RandHistogramShift) hand
inversion             T2-like contrast: the head inverted, the background black   hand
low resolution        a coarser acquisition: down-sampled, then up again          hand
blur                  a smoother reconstruction or a thicker slice                kornia
sharpen               vendor edge enhancement                                     kornia
noise                 thermal noise, Gaussian or Rician (magnitude images)        hand
====================  =========================================================  ==========

kornia (a dependency) does the pixel work where it has the op (``adjust_gamma``,
``gaussian_blur2d``, ``sharpness``, all taking one value per image); the rest is written here
because kornia has no equivalent: its illumination ops are additive gradients rather than a
multiplicative field, ``RandomInvert`` turns the black background white (no scan does that),
``RandomGaussianNoise`` has one sigma per batch and no Rician variant, and it has neither a
histogram shift nor a down/up-sampling op. MONAI has most of these, per image in Python on
the CPU, and would be a large dependency for a few lines each.

Every random draw is made on the CPU's generator (as in ``training/augment.py``), so a seeded
run augments identically on CPU and GPU; an op whose probability is 0 draws nothing, so a
recipe without it keeps its random stream (the bundled run stays bit-identical). Each op
draws its parameters for every image of the batch, then applies to the images its
probability chose. Masks never pass through here: none of these moves a pixel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from braintumor.training.config import AugmentConfig

# Below this fraction of an image's brightest 4x4 mean a pixel is background (about the threshold of
# data/preprocess.py's head crop), for the T2-like inversion.
HEAD_THRESHOLD = 0.08


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, dtype=torch.float64).mul_(high - low).add_(low)


def _chosen(n: int, p: float) -> torch.Tensor:
    """Indices of the images an op with probability ``p`` applies to (one draw per image)."""
    return (torch.rand(n) < p).nonzero().squeeze(1)


def _draw(n: int, p: float, value_range: tuple[float, float]
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(chosen indices, one value per image uniform in ``value_range``), in that draw order."""
    return _chosen(n, p), _uniform(n, *value_range)


def _bias_basis(h: int, w: int, device, dtype) -> torch.Tensor:
    """(9, H, W): the monomials x^i y^j with 1 <= i + j <= 3 on [-1, 1]^2 (MONAI's degree 3)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h, device=device, dtype=dtype),
                            torch.linspace(-1, 1, w, device=device, dtype=dtype), indexing="ij")
    return torch.stack([xx ** i * yy ** j for i in range(4) for j in range(4 - i) if i + j > 0])


def enabled_ops(cfg: AugmentConfig) -> list[str]:
    """Names of the appearance ops this config switches on, in the order they run."""
    probs = {"bias_field": cfg.bias_field_prob, "gamma": cfg.gamma_prob,
             "histogram_shift": cfg.histogram_shift_prob, "invert": cfg.invert_prob,
             "low_resolution": cfg.low_resolution_prob, "blur": cfg.blur_prob,
             "sharpen": cfg.sharpen_prob, "noise": cfg.noise_prob}
    return [name for name, p in probs.items() if p > 0]


class AppearanceAugment:
    """The ops above, in that order, on a float (N, C, H, W) batch in [0, 1]."""

    def __init__(self, cfg: AugmentConfig):
        self.cfg = cfg

    @property
    def active(self) -> bool:
        return bool(enabled_ops(self.cfg))

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Augments ``x`` in place where it can (callers pass a batch of their own)."""
        for name in enabled_ops(self.cfg):
            x = getattr(self, f"_{name}")(x)
        return x.clamp_(0.0, 1.0)

    # Each op: draw for all N images, apply to the chosen ones, return the batch.
    def _bias_field(self, x: torch.Tensor) -> torch.Tensor:
        """x * exp(a P / max|P|), P a random cubic, a ~ U(0, strength): gains in e^(+-a)."""
        n, cfg = x.shape[0], self.cfg
        idx = _chosen(n, cfg.bias_field_prob)
        coeffs = _uniform(n * 9, -1.0, 1.0).view(n, 9)
        amp = _uniform(n, 0.0, cfg.bias_field_strength)
        if len(idx):
            basis = _bias_basis(x.shape[-2], x.shape[-1], x.device, torch.float32)
            poly = torch.einsum("nk,khw->nhw", coeffs[idx].to(x.device, torch.float32), basis)
            peak = poly.abs().flatten(1).amax(1).clamp_min(1e-6)
            scale = (amp[idx].to(x.device, torch.float32) / peak).view(-1, 1, 1)
            x[idx] = (x[idx] * torch.exp(poly * scale).unsqueeze(1).to(x.dtype)).clamp_(0, 1)
        return x

    def _gamma(self, x: torch.Tensor) -> torch.Tensor:
        """x ** g, g log-uniform in ``gamma`` (so 0.6 and 1/0.6 are equally likely)."""
        from kornia.enhance import adjust_gamma

        n, (lo, hi) = x.shape[0], self.cfg.gamma
        idx = _chosen(n, self.cfg.gamma_prob)
        g = _uniform(n, math.log(lo), math.log(hi)).exp_()
        if len(idx):
            x[idx] = adjust_gamma(x[idx], g[idx].to(x.device, x.dtype))
        return x

    def _histogram_shift(self, x: torch.Tensor) -> torch.Tensor:
        """A random monotone piecewise-linear intensity curve through (0, 0) and (1, 1).

        MONAI's RandHistogramShift on a fixed [0, 1] range: ``k`` control points evenly
        spaced, the inner ones moved by up to ``strength`` of their spacing (< 0.5, so the
        curve stays increasing and black stays black).
        """
        n, cfg = x.shape[0], self.cfg
        k = cfg.histogram_shift_points
        idx = _chosen(n, cfg.histogram_shift_prob)
        moves = _uniform(n * (k - 2), -cfg.histogram_shift_strength,
                         cfg.histogram_shift_strength).view(n, k - 2) / (k - 1)
        if len(idx):
            ref = torch.linspace(0, 1, k, dtype=torch.float64)
            ys = ref.repeat(len(idx), 1)
            ys[:, 1:-1] += moves[idx]
            ys = ys.to(x.device, x.dtype)
            # Sum of ramps, one per segment: k - 1 elementwise passes, no index tensors.
            pos = x[idx].clamp(0, 1) * (k - 1)
            out = torch.zeros_like(pos)
            for j in range(k - 1):
                rise = (ys[:, j + 1] - ys[:, j]).view(-1, 1, 1, 1)
                out.addcmul_((pos - j).clamp_(0, 1), rise)
            x[idx] = out
        return x

    def _invert(self, x: torch.Tensor) -> torch.Tensor:
        """T2-like: 1 - x inside the head (closed, so dark ventricles count), 0 outside."""
        n = x.shape[0]
        idx = _chosen(n, self.cfg.invert_prob)
        if len(idx):
            sel = x[idx]
            # The brightest 4x4 mean stands in for the 99th percentile: no sort, and a few
            # hot pixels cannot set it.
            ref = F.avg_pool2d(sel, 4, ceil_mode=True).flatten(1).amax(1).clamp_min(1e-6)
            head = (sel > HEAD_THRESHOLD * ref.to(sel.dtype).view(-1, 1, 1, 1)).to(sel.dtype)
            k = 2 * (max(sel.shape[-2:]) // 24) + 1  # closing: dilate, then erode
            head = F.max_pool2d(head, k, stride=1, padding=k // 2)
            head = -F.max_pool2d(-head, k, stride=1, padding=k // 2)
            x[idx] = head * (1.0 - sel)
        return x

    def _low_resolution(self, x: torch.Tensor) -> torch.Tensor:
        """Down-sampled to a random share of the side (antialiased), then back (bilinear).

        Images with the same size are resampled together (a few groups per batch).
        """
        n, (h, w) = x.shape[0], x.shape[-2:]
        idx, scale = _draw(n, self.cfg.low_resolution_prob, self.cfg.low_resolution_scale)
        # Scales rounded to 8 px steps of the height: a handful of groups per batch.
        steps = [max(1, round(h * float(s) / 8)) * 8 / h for s in scale]
        sides = [(max(4, round(h * q)), max(4, round(w * q))) for q in steps]
        groups: dict[tuple[int, int], list[int]] = {}
        for i in idx.tolist():
            groups.setdefault(sides[i], []).append(i)
        for size, members in groups.items():
            if size == (h, w):
                continue
            m = torch.tensor(members, device=x.device)
            small = F.interpolate(x[m], size=size, mode="bilinear", antialias=True,
                                  align_corners=False)
            x[m] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        return x

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        from kornia.filters import gaussian_blur2d

        idx, sigma = _draw(x.shape[0], self.cfg.blur_prob, self.cfg.blur_sigma)
        if len(idx):
            ksize = 2 * math.ceil(3 * self.cfg.blur_sigma[1]) + 1
            s = sigma[idx].to(x.device, x.dtype).view(-1, 1).repeat(1, 2)
            x[idx] = gaussian_blur2d(x[idx], (ksize, ksize), s, border_type="constant")
        return x

    def _sharpen(self, x: torch.Tensor) -> torch.Tensor:
        """PIL's ImageEnhance.Sharpness (kornia ``sharpness``): factor 1 is the image."""
        from kornia.enhance import sharpness

        idx, factor = _draw(x.shape[0], self.cfg.sharpen_prob, self.cfg.sharpen_factor)
        if len(idx):
            x[idx] = sharpness(x[idx], factor[idx].to(x.device, x.dtype)).clamp_(0, 1)
        return x

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        """x + n1 (Gaussian) or |x + n1 + i n2| (Rician, a share ``noise_rician``), n ~ N(0, s).

        The noise fields are drawn on the CPU too (then moved): a little transfer on a GPU,
        for runs that repeat on any device.
        """
        n = x.shape[0]
        idx, sigma = _draw(n, self.cfg.noise_prob, self.cfg.noise_std)
        rician = torch.rand(n) < self.cfg.noise_rician
        if len(idx):
            shape = (len(idx), *x.shape[1:])
            s = sigma[idx].float().view(-1, 1, 1, 1)
            n1 = (torch.randn(shape) * s).to(x.device, x.dtype)
            n2 = (torch.randn(shape) * s).to(x.device, x.dtype)
            noisy = x[idx] + n1
            ric = rician[idx].to(x.device).view(-1, 1, 1, 1)
            x[idx] = torch.where(ric, torch.hypot(noisy, n2), noisy)  # clamped at the end
        return x
