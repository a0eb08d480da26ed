"""IODINE's networks as plain torch blocks (no Pyro): the spatial broadcast decoder, the
refinement network (convolutional encoder, MLP, LSTM, posterior head), the assembly and
normalisation of the refinement network's auxiliary inputs, and both references' initialisations.

Two architectures are implemented, selected by name:

* ``"port"``: the PyTorch port (karazijal/clevrtex ``ool/picture/models/iodine.py``), which the
  float64 fixtures pin numerically.
* ``"original"``: the TF1 original (google-deepmind/deepmind-research ``iodine/``), as its
  ``configurations.py`` builds it for CLEVR6, Multi-dSprites and Tetrominoes.

Shapes: ``B`` images, ``K`` slots, ``D`` latent dimensions, ``(C, H, W)`` images, ``N = B * K``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pyro_emorl.nn.precision import autocast_convs

#: The two architectures: the PyTorch port and the TF1 original.
ARCHITECTURES = ("port", "original")
#: The TF1 decoder appends this constant to every latent (``iodine.py:270``, "legacy").
ORIGINAL_LATENT_CONSTANT = 5.0
#: The TF1 refinement inputs ``capacity`` and ``flat_capacity`` are this constant ("legacy").
ORIGINAL_CAPACITY = 0.5
#: The TF1 mask posterior divides by ``sum_k p_k + 1e-6``.
ORIGINAL_POSTERIOR_EPS = 1e-6
#: Frequencies of the TF1 cosine coordinate channels (``coord_freqs``).
COSINE_FREQUENCIES = 3
#: Epsilon of every LayerNorm (torch's default equals Sonnet 1's).
LAYER_NORM_EPS = 1e-5


def linear_coordinates(height: int, width: int, like: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinate planes ``linspace(-1, 1)`` along H and along W.

    Args:
        height: ``H``.
        width: ``W``.
        like: a tensor whose dtype and device the planes take.

    Returns:
        ``(along_h, along_w)``, each ``[H, W]``: the first varies along H (rows), the second along
        W (columns).
    """
    rows = torch.linspace(-1.0, 1.0, height, dtype=like.dtype, device=like.device)
    cols = torch.linspace(-1.0, 1.0, width, dtype=like.dtype, device=like.device)
    along_h, along_w = torch.meshgrid(rows, cols, indexing="ij")
    return along_h, along_w


def cosine_coordinates(
    height: int, width: int, like: Tensor, frequencies: int = COSINE_FREQUENCIES
) -> Tensor:
    """The TF1 original's cosine coordinate channels (``coord_type="cos"``).

    Channel ``f_x * F + f_y`` is ``cos(f_x u) cos(f_y v)`` with ``u = linspace(0, pi, W)`` along
    W, ``v = linspace(0, pi, H)`` along H and ``f_x, f_y`` in ``0 .. F - 1``; the constant
    channel 0 is dropped.

    Args:
        height: ``H``.
        width: ``W``.
        like: a tensor whose dtype and device the channels take.
        frequencies: ``F``.

    Returns:
        ``[F * F - 1, H, W]`` (8 channels for ``F = 3``).
    """
    f = torch.arange(frequencies, dtype=like.dtype, device=like.device)
    u = torch.linspace(0.0, math.pi, width, dtype=like.dtype, device=like.device)
    v = torch.linspace(0.0, math.pi, height, dtype=like.dtype, device=like.device)
    x_basis = torch.cos(f[:, None] * u[None, :])  # [F(x), W]
    y_basis = torch.cos(f[:, None] * v[None, :])  # [F(y), H]
    grid = x_basis[:, None, None, :] * y_basis[None, :, :, None]  # [F(x), F(y), H, W]
    return grid.reshape(frequencies * frequencies, height, width)[1:]


class BroadcastDecoder(nn.Module):
    """IODINE's spatial broadcast decoder: ``z [..., D] -> (rgb [..., C, H, W],
    mask_logits [..., 1, H, W])``.

    ``architecture="port"``: ``z`` is tiled to ``(H + m) x (W + m)`` with ``m = layers * (kernel -
    1)`` and followed by the coordinate planes along W, then along H; ``layers`` unpadded
    convolutions with ELU shrink it back to ``H x W``; a 1x1 convolution gives ``C + 1`` channels:
    the sigmoid of the first ``C`` are the RGB means, the last is the mask logit.

    ``architecture="original"``: the constant 5.0 is appended to ``z``, which is tiled to
    ``H x W`` and followed by the coordinate planes along H, then along W; ``layers``
    convolutions with "SAME" padding and ELU, then a final ``kernel x kernel`` convolution to
    ``1 + C`` channels without activation: channel 0 is the mask logit, channels 1.. the RGB
    means (unbounded).

    Args:
        z_dim: ``D``.
        image_shape: ``(C, H, W)``.
        architecture: ``"port"`` or ``"original"``.
        channels: width of the hidden convolutions.
        kernel: their kernel size (odd for ``"original"``).
        layers: number of hidden convolutions (4 in both references).
    """

    def __init__(
        self,
        z_dim: int,
        image_shape: tuple[int, int, int],
        architecture: str = "port",
        channels: int = 64,
        kernel: int = 3,
        layers: int = 4,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if architecture == "original" and kernel % 2 == 0:
            raise ValueError(f"the original decoder needs an odd kernel, got {kernel}")
        if min(channels, kernel, layers) < 1:
            raise ValueError("channels, kernel and layers must be positive")
        self.architecture = architecture
        self.z_dim = z_dim
        self.image_shape = tuple(image_shape)
        image_channels = image_shape[0]
        inputs = z_dim + 2 if architecture == "port" else z_dim + 1 + 2
        padding = 0 if architecture == "port" else kernel // 2
        hidden = []
        for i in range(layers):
            hidden.append(nn.Conv2d(inputs if i == 0 else channels, channels, kernel, 1, padding))
        self.hidden = nn.ModuleList(hidden)
        if architecture == "port":
            self.output = nn.Conv2d(channels, image_channels + 1, 1)
            self.margin = layers * (kernel - 1)
        else:
            self.output = nn.Conv2d(channels, 1 + image_channels, kernel, 1, padding)
            self.margin = 0
        #: The dtype the convolutions run in (``None``: the parameters'; see
        #: [set_conv_dtype][pyro_emorl.nn.precision.set_conv_dtype]).
        self.conv_dtype: torch.dtype | None = None

    def _convolutions(self, net: Tensor) -> Tensor:
        for conv in self.hidden:
            net = F.elu(conv(net))
        return self.output(net)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Decode every slot.

        Args:
            z: latents ``[..., D]`` (typically ``[B, K, D]``).

        Returns:
            ``(rgb [..., C, H, W], mask_logits [..., 1, H, W])``.
        """
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        _, height, width = self.image_shape
        h, w = height + self.margin, width + self.margin
        if self.architecture == "original":
            constant = flat.new_full((flat.shape[0], 1), ORIGINAL_LATENT_CONSTANT)
            flat = torch.cat([flat, constant], dim=-1)
        tiled = flat[:, :, None, None].expand(-1, -1, h, w)
        along_h, along_w = linear_coordinates(h, w, flat)
        if self.architecture == "port":
            planes = torch.stack([along_w, along_h])  # x (along W), then y (along H)
        else:
            planes = torch.stack([along_h, along_w])
        net = torch.cat([tiled, planes.expand(flat.shape[0], -1, -1, -1)], dim=1)
        out = autocast_convs(self, net, self._convolutions)
        if self.architecture == "port":
            rgb, mask_logits = torch.sigmoid(out[:, :-1]), out[:, -1:]
        else:
            mask_logits, rgb = out[:, :1], out[:, 1:]
        return (
            rgb.reshape(*lead, *rgb.shape[1:]),
            mask_logits.reshape(*lead, *mask_logits.shape[1:]),
        )


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding ``(before, after)`` of one spatial axis (asymmetric when the
    total is odd: the extra pixel goes after)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class RefinementEncoder(nn.Module):
    """Stride-2 convolutions with ELU, a spatial mean, then an MLP: ``[N, C_in, H, W] -> [N, F]``.

    Args:
        in_channels: ``C_in``.
        channels: widths of the convolutions (stride 2 each, ELU after every one).
        kernel: their kernel size.
        padding: ``"symmetric"`` (``kernel // 2`` on every side, the port's ``padding=1`` for
            3x3) or ``"same"`` (TensorFlow's, asymmetric on even sizes: the original).
        mlp: widths of the MLP layers (ELU between them).
        activate_final: ELU after the last MLP layer too (the port: yes; the original: no).
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        kernel: int,
        padding: str,
        mlp: Sequence[int],
        activate_final: bool,
    ) -> None:
        super().__init__()
        if padding not in ("symmetric", "same"):
            raise ValueError(f"padding must be 'symmetric' or 'same', got {padding!r}")
        self.kernel = kernel
        self.padding = padding
        sizes = [in_channels, *channels]
        pad = kernel // 2 if padding == "symmetric" else 0
        self.convs = nn.ModuleList(
            nn.Conv2d(a, b, kernel, 2, pad) for a, b in zip(sizes[:-1], sizes[1:])
        )
        sizes = [sizes[-1], *mlp]
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activate_final = activate_final
        self.out_features = sizes[-1]
        #: The dtype the convolutions run in (``None``: the parameters').
        self.conv_dtype: torch.dtype | None = None

    def _convolutions(self, x: Tensor) -> Tensor:
        for conv in self.convs:
            if self.padding == "same":
                top, bottom = same_padding(x.shape[-2], self.kernel, 2)
                left, right = same_padding(x.shape[-1], self.kernel, 2)
                x = F.pad(x, (left, right, top, bottom))
            x = F.elu(conv(x))
        return x

    def forward(self, x: Tensor) -> Tensor:
        """``[N, C_in, H, W] -> [N, F]``."""
        x = autocast_convs(self, x, self._convolutions).mean(dim=(-2, -1))
        for i, layer in enumerate(self.mlp):
            x = layer(x)
            if i < len(self.mlp) - 1 or self.activate_final:
                x = F.elu(x)
        return x


class SonnetLSTMCell(nn.Module):
    """The LSTM cell of Sonnet 1 (``snt.LSTM``), which the TF1 original uses.

    One weight ``w_gates [in + h, 4h]`` on ``[input, hidden]`` and one bias ``b_gates [4h]``;
    gates split as ``i, j, f, o``; ``c' = sigmoid(f + 1) c + sigmoid(i) tanh(j)``,
    ``h' = tanh(c') sigmoid(o)`` (the forget bias 1 is a constant, not a parameter).

    Args:
        input_size: ``in``.
        hidden_size: ``h``.
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.w_gates = nn.Parameter(torch.empty(input_size + hidden_size, 4 * hidden_size))
        self.b_gates = nn.Parameter(torch.empty(4 * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Sonnet's initialisation: truncated normal, std ``1 / sqrt(in + h)``, weight and bias."""
        std = 1 / math.sqrt(self.input_size + self.hidden_size)
        for p in (self.w_gates, self.b_gates):
            nn.init.trunc_normal_(p, std=std, a=-2 * std, b=2 * std)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One step: ``x [N, in]``, ``state = (h, c)`` each ``[N, h]`` -> ``(h', c')``."""
        hidden, cell = state
        gates = torch.cat([x, hidden], dim=-1) @ self.w_gates + self.b_gates
        i, j, f, o = gates.chunk(4, dim=-1)
        cell = torch.sigmoid(f + 1.0) * cell + torch.sigmoid(i) * torch.tanh(j)
        hidden = torch.tanh(cell) * torch.sigmoid(o)
        return hidden, cell


class RefinementNetwork(nn.Module):
    """IODINE's refinement network: the encoder on the spatial inputs, concatenated with the
    flat inputs, an LSTM (or none), and a linear head to the posterior update ``[N, 2D]``.

    Args:
        spatial_channels: channels of the spatial inputs.
        flat_size: size of the flat inputs.
        z_dim: ``D`` (the head outputs ``2D``: the updates of ``loc`` and of the pre-softplus
            variance).
        conv_channels: widths of the encoder's stride-2 convolutions.
        kernel: their kernel size.
        padding: ``"symmetric"`` or ``"same"`` (see `RefinementEncoder`).
        mlp: widths of the encoder's MLP.
        mlp_activate_final: ELU after its last layer.
        lstm: ``"torch"`` (``nn.LSTMCell``: two biases, gates ``i, f, g, o``, no forget bias; the
            port) or ``"sonnet"`` (`SonnetLSTMCell`; the original).
        lstm_size: hidden size of the LSTM; 0 for none (the original's Tetrominoes).
    """

    def __init__(
        self,
        spatial_channels: int,
        flat_size: int,
        z_dim: int,
        conv_channels: Sequence[int],
        kernel: int,
        padding: str,
        mlp: Sequence[int],
        mlp_activate_final: bool,
        lstm: str,
        lstm_size: int,
    ) -> None:
        super().__init__()
        self.encoder = RefinementEncoder(
            spatial_channels, conv_channels, kernel, padding, mlp, mlp_activate_final
        )
        features = self.encoder.out_features + flat_size
        self.lstm: nn.Module | None
        if lstm_size == 0:
            self.lstm = None
        elif lstm == "torch":
            self.lstm = nn.LSTMCell(features, lstm_size)
        elif lstm == "sonnet":
            self.lstm = SonnetLSTMCell(features, lstm_size)
        else:
            raise ValueError(f"lstm must be 'torch' or 'sonnet', got {lstm!r}")
        self.lstm_size = lstm_size
        self.head = nn.Linear(lstm_size or features, 2 * z_dim)

    def forward(
        self, spatial: Tensor, flat: Tensor, hidden: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor] | None]:
        """One refinement step.

        Args:
            spatial: ``[N, C_s, H, W]``.
            flat: ``[N, F]``.
            hidden: the LSTM state ``(h, c)``, each ``[N, lstm_size]``; ``None`` for zeros.

        Returns:
            ``(update [N, 2D], new hidden state)`` (``None`` without an LSTM).
        """
        features = torch.cat([self.encoder(spatial), flat], dim=-1)
        if self.lstm is None:
            return self.head(features), None
        if hidden is None:
            zeros = features.new_zeros(features.shape[0], self.lstm_size)
            hidden = (zeros, zeros)
        hidden = self.lstm(features, hidden)
        return self.head(hidden[0]), hidden


class ChannelLayerNorm(nn.Module):
    """Sonnet 1's ``LayerNorm`` on ``[N, C, H, W]``: statistics over ``(C, H, W)`` (biased
    variance), affine per channel (``gamma, beta [C]``), as the original normalises its spatial
    inputs.

    Args:
        channels: ``C``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """``[..., C, H, W]`` to the same shape."""
        normed = F.layer_norm(x, x.shape[-3:], eps=LAYER_NORM_EPS)
        return normed * self.weight[:, None, None] + self.bias[:, None, None]


class DecodedStep(NamedTuple):
    """What the refinement network reads of one decoded step (all ``[B, K, ...]``).

    Attributes:
        images: the image each slot sees ``[B, K, C, H, W]``.
        components: the likelihood's component means ``[B, K, C, H, W]`` (with graph).
        log_weights: the likelihood's log mixing weights ``[B, K, 1, H, W]`` (with graph).
        mask_logits: the decoder's mask logits ``[B, K, 1, H, W]`` (with graph).
        component_log_prob: log density of every image element under every component
            ``[B, K, C, H, W]`` (with graph).
        joint_channels: whether the likelihood mixes the channels jointly (one mixture per pixel,
            the original's) or each channel on its own (the port's).
        d_components: gradient of the previous objective w.r.t. ``components``.
        d_log_weights: gradient w.r.t. ``log_weights``.
        loc: posterior means ``[B, K, D]`` (with graph).
        raw_variance: pre-softplus posterior variances ``[B, K, D]`` (with graph).
        d_loc: gradient w.r.t. ``loc``.
        d_raw_variance: gradient w.r.t. ``raw_variance``.
    """

    images: Tensor
    components: Tensor
    log_weights: Tensor
    mask_logits: Tensor
    component_log_prob: Tensor
    joint_channels: bool
    d_components: Tensor
    d_log_weights: Tensor
    loc: Tensor
    raw_variance: Tensor
    d_loc: Tensor
    d_raw_variance: Tensor


def mixture_groups(component_log_prob: Tensor, joint_channels: bool) -> Tensor:
    """Per-component log densities of each independent mixture: ``[B, K, G, H, W]`` with ``G = 1``
    (channels joint) or ``G = C`` (each channel its own mixture)."""
    if joint_channels:
        return component_log_prob.sum(dim=-3, keepdim=True)
    return component_log_prob


def pixel_log_likelihood(groups: Tensor, log_weights: Tensor) -> Tensor:
    """``log p(x_ij)`` of every pixel: ``sum_g logsumexp_k(log w_k + groups_k)``,
    ``[B, 1, 1, H, W]``."""
    return torch.logsumexp(log_weights + groups, dim=-4, keepdim=True).sum(dim=-3, keepdim=True)


def leave_one_out_log_likelihood(groups: Tensor, log_weights: Tensor) -> Tensor:
    """``log p_{-k}(x_ij)``: the pixel log-likelihood under the mixture of the other ``K - 1``
    components, their weights renormalised: ``[B, K, 1, H, W]`` (zeros when ``K = 1``)."""
    num_slots = groups.shape[-4]
    if num_slots == 1:
        return torch.zeros_like(log_weights)
    out = []
    for k in range(num_slots):  # a loop over k keeps the memory at O(K), not O(K^2)
        keep = [j for j in range(num_slots) if j != k]
        weights = torch.log_softmax(log_weights[:, keep], dim=-4)
        out.append(pixel_log_likelihood(groups[:, keep], weights))
    return torch.cat(out, dim=-4)


class RefinementInputs(nn.Module):
    """Assembles and normalises the refinement network's inputs from a `DecodedStep`.

    ``layout="port"``: 17 spatial channels (for ``C = 3``) in the port's order: image, means,
    log mask, mask logits, mask posterior (log space, no mask weights), LN(d means), LN(d log
    mask), LN(log p), LN(log p_{-k}), coordinate along H, coordinate along W; flat ``[loc,
    raw_variance, LN(d loc), LN(d raw_variance)]`` (``4D``). Its LayerNorms have an affine
    parameter per element (``(c, H, W)`` and ``(D,)``).

    ``layout="original"``: the TF1 inputs, sorted by name: capacity (0.5), components,
    coordinates (2 linear or 8 cosine channels), counterfactual LN(log p - log p_{-k}),
    LN(d components), LN(d mask logits), image, LN(log p), mask logits, mask posterior
    (probability space, ``/ (sum + 1e-6)``), mask probabilities: 18 or 24 channels; flat
    ``[LN(d zp), 0.5, zp]`` (``4D + 1``) with ``zp = [loc, raw_variance]``. Its LayerNorms are
    Sonnet's (affine per channel; the gradients of ``loc`` and ``raw_variance`` normalised
    jointly).

    Gradients, ``log p`` and ``log p_{-k}`` enter without their own gradient (stop-gradient, as in
    both references); every other input keeps its graph.

    Args:
        layout: ``"port"`` or ``"original"``.
        image_shape: ``(C, H, W)``.
        z_dim: ``D``.
        coordinates: ``"linear"`` or ``"cos"`` (``"original"`` only; the port's are linear).
    """

    def __init__(
        self,
        layout: str,
        image_shape: tuple[int, int, int],
        z_dim: int,
        coordinates: str = "linear",
    ) -> None:
        super().__init__()
        if layout not in ARCHITECTURES:
            raise ValueError(f"layout must be one of {ARCHITECTURES}, got {layout!r}")
        if coordinates not in ("linear", "cos"):
            raise ValueError(f"coordinates must be 'linear' or 'cos', got {coordinates!r}")
        if layout == "port" and coordinates != "linear":
            raise ValueError("the port's refinement inputs have linear coordinates only")
        self.layout = layout
        self.coordinates = coordinates
        self.image_shape = tuple(image_shape)
        self.z_dim = z_dim
        c, h, w = image_shape
        if layout == "port":
            self.norms = nn.ModuleDict(
                {
                    "log_prob": nn.LayerNorm((1, h, w), eps=LAYER_NORM_EPS),
                    "leave_one_out": nn.LayerNorm((1, h, w), eps=LAYER_NORM_EPS),
                    "d_components": nn.LayerNorm((c, h, w), eps=LAYER_NORM_EPS),
                    "d_mask": nn.LayerNorm((1, h, w), eps=LAYER_NORM_EPS),
                    "d_loc": nn.LayerNorm(z_dim, eps=LAYER_NORM_EPS),
                    "d_raw_variance": nn.LayerNorm(z_dim, eps=LAYER_NORM_EPS),
                }
            )
            self.spatial_channels = 3 * c + 8
            self.flat_size = 4 * z_dim
        else:
            self.norms = nn.ModuleDict(
                {
                    "counterfactual": ChannelLayerNorm(1),
                    "d_components": ChannelLayerNorm(c),
                    "d_mask": ChannelLayerNorm(1),
                    "log_prob": ChannelLayerNorm(1),
                    "d_params": nn.LayerNorm(2 * z_dim, eps=LAYER_NORM_EPS),
                }
            )
            num_coordinates = 2 if coordinates == "linear" else COSINE_FREQUENCIES**2 - 1
            self.spatial_channels = 3 * c + 7 + num_coordinates
            self.flat_size = 4 * z_dim + 1

    def forward(self, step: DecodedStep) -> tuple[Tensor, Tensor]:
        """The inputs of one refinement step.

        Args:
            step: the decoded step (``[B, K, ...]`` tensors).

        Returns:
            ``(spatial [B * K, C_s, H, W], flat [B * K, F])``.
        """
        if self.layout == "port":
            spatial, flat = self._port(step)
        else:
            spatial, flat = self._original(step)
        return spatial.flatten(0, 1), flat.flatten(0, 1)

    def _statistics(self, step: DecodedStep) -> tuple[Tensor, Tensor]:
        with torch.no_grad():  # both enter with a stop-gradient
            groups = mixture_groups(step.component_log_prob, step.joint_channels)
            log_prob = pixel_log_likelihood(groups, step.log_weights)
            leave_one_out = leave_one_out_log_likelihood(groups, step.log_weights)
        return log_prob, leave_one_out

    def _coordinates(self, like: Tensor) -> Tensor:
        b, k = like.shape[:2]
        _, h, w = self.image_shape
        if self.coordinates == "cos":
            planes = cosine_coordinates(h, w, like)
        else:
            along_h, along_w = linear_coordinates(h, w, like)
            order = (along_h, along_w) if self.layout == "port" else (along_w, along_h)
            planes = torch.stack(order)
        return planes.expand(b, k, -1, -1, -1)

    def _port(self, step: DecodedStep) -> tuple[Tensor, Tensor]:
        norms = self.norms
        b, k = step.log_weights.shape[:2]
        log_prob, leave_one_out = self._statistics(step)
        mask_log_likelihood = step.component_log_prob.sum(dim=-3, keepdim=True)
        posterior = mask_log_likelihood - torch.logsumexp(mask_log_likelihood, dim=-4, keepdim=True)
        spatial = torch.cat(
            [
                step.images,
                step.components,
                step.log_weights,
                step.mask_logits,
                posterior,
                norms["d_components"](step.d_components),
                norms["d_mask"](step.d_log_weights),
                norms["log_prob"](log_prob.expand(b, k, -1, -1, -1)),
                norms["leave_one_out"](leave_one_out),
                self._coordinates(step.log_weights),
            ],
            dim=-3,
        )
        flat = torch.cat(
            [
                step.loc,
                step.raw_variance,
                norms["d_loc"](step.d_loc),
                norms["d_raw_variance"](step.d_raw_variance),
            ],
            dim=-1,
        )
        return spatial, flat

    def _original(self, step: DecodedStep) -> tuple[Tensor, Tensor]:
        norms = self.norms
        b, k = step.log_weights.shape[:2]
        log_prob, leave_one_out = self._statistics(step)
        probabilities = step.log_weights.exp()
        # The gradient w.r.t. the logits, from the one w.r.t. log-softmax(logits).
        d_logits = step.d_log_weights - probabilities * step.d_log_weights.sum(-4, keepdim=True)
        density = step.component_log_prob.sum(dim=-3, keepdim=True).exp()
        posterior = density / (density.sum(dim=-4, keepdim=True) + ORIGINAL_POSTERIOR_EPS)
        capacity = step.log_weights.new_full((b, k, 1, *self.image_shape[1:]), ORIGINAL_CAPACITY)
        spatial = torch.cat(  # sorted by the original's input names
            [
                capacity,
                step.components,
                self._coordinates(step.log_weights),
                norms["counterfactual"](log_prob - leave_one_out),
                norms["d_components"](step.d_components),
                norms["d_mask"](d_logits),
                step.images,
                norms["log_prob"](log_prob).expand(b, k, -1, -1, -1),
                step.mask_logits,
                posterior,
                probabilities,
            ],
            dim=-3,
        )
        d_params = torch.cat([step.d_loc, step.d_raw_variance], dim=-1)
        flat = torch.cat(
            [
                norms["d_params"](d_params),
                step.loc.new_full((b, k, 1), ORIGINAL_CAPACITY),
                step.loc,
                step.raw_variance,
            ],
            dim=-1,
        )
        return spatial, flat


def port_init_(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """The port's initialisation: xavier-normal weights with gain 0.02 and zero biases for every
    ``Conv2d`` and ``Linear``; LSTMs and LayerNorms keep torch's defaults. In place.

    Args:
        module: the decoder or the refinement network.
        gain: the xavier gain.

    Returns:
        ``module``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


def original_init_(module: nn.Module) -> nn.Module:
    """Sonnet 1's initialisation, as the original gets it: truncated-normal weights (within two
    standard deviations) with std ``1 / sqrt(fan_in)`` and zero biases for every convolution and
    linear layer, Sonnet's own for its LSTM, ones and zeros for LayerNorms. In place.

    Args:
        module: the decoder or the refinement network.

    Returns:
        ``module``.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            std = 1 / math.sqrt(m.weight[0].numel())
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, SonnetLSTMCell | nn.LayerNorm):
            m.reset_parameters()
        elif isinstance(m, ChannelLayerNorm):
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module
