"""The recurrent posterior update of the bottom-up layers: DualGRU and its plain-GRU ablation."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pyro_emorl.nn.init import official_init_


class DualGRUCell(nn.Module):
    """Two independent GRU cells, one for the posterior mean and one for its raw scale.

    The official code fuses them into one block-diagonal GRU; the arithmetic is identical to two
    PyTorch-convention GRU cells (gate order reset, update, new; reset applied to
    ``W_hn h + b_hn``) that both read the same attention update. Parameter names and layouts are
    the official ones (``bias_ih`` rows are ``[r1, z1, r2, z2]``, ``bias_in`` rows ``[n1, n2]``),
    and every parameter starts from N(0, 1) as in the official code.

    Args:
        input_size: width of each stream's input (``D``).
        hidden_size: width of each stream's state (``D``).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        d_in, d = input_size, hidden_size
        self.hidden_size = d
        for stream in (1, 2):
            setattr(self, f"weight_ih_{stream}", nn.Parameter(torch.randn(2 * d, d_in)))
            setattr(self, f"weight_hh_{stream}", nn.Parameter(torch.randn(2 * d, d)))
        self.bias_ih = nn.Parameter(torch.randn(4 * d))
        self.bias_hh = nn.Parameter(torch.randn(4 * d))
        for stream in (1, 2):
            setattr(self, f"weight_in_{stream}", nn.Parameter(torch.randn(d, d_in)))
            setattr(self, f"weight_hn_{stream}", nn.Parameter(torch.randn(d, d)))
        self.bias_in = nn.Parameter(torch.randn(2 * d))
        self.bias_hn = nn.Parameter(torch.randn(2 * d))

    def _stream(self, i: int, u: Tensor, h: Tensor) -> Tensor:
        d = self.hidden_size
        w_ih, w_hh = getattr(self, f"weight_ih_{i}"), getattr(self, f"weight_hh_{i}")
        w_in, w_hn = getattr(self, f"weight_in_{i}"), getattr(self, f"weight_hn_{i}")
        rows = slice(2 * d * (i - 1), 2 * d * i)
        gates = u @ w_ih.T + self.bias_ih[rows] + h @ w_hh.T + self.bias_hh[rows]
        reset, update = torch.sigmoid(gates).chunk(2, dim=-1)
        rows = slice(d * (i - 1), d * i)
        new = torch.tanh(
            u @ w_in.T + self.bias_in[rows] + reset * (h @ w_hn.T + self.bias_hn[rows])
        )
        return (1 - update) * new + update * h

    def forward(self, update: Tensor, loc: Tensor, raw_scale: Tensor) -> tuple[Tensor, Tensor]:
        """One step.

        Args:
            update: attention update ``[..., D]`` (both streams read it).
            loc: posterior mean ``[..., D]`` (state of stream 1).
            raw_scale: raw posterior scale ``[..., D]`` (state of stream 2).

        Returns:
            New ``(loc, raw_scale)``, each ``[..., D]``.
        """
        return self._stream(1, update, loc), self._stream(2, update, raw_scale)


class ProjectedGRUCell(nn.Module):
    """The ``use_DualGRU=False`` ablation: one standard GRU over the concatenated ``[loc; raw]``.

    The attention update is first projected from ``D`` to ``2D``.

    Args:
        input_size: width of the attention update (``D``).
        hidden_size: width of each of ``loc`` and ``raw_scale`` (``D``).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.project_update = official_init_(nn.Linear(input_size, 2 * hidden_size))
        self.cell = nn.GRUCell(2 * hidden_size, 2 * hidden_size)

    def forward(self, update: Tensor, loc: Tensor, raw_scale: Tensor) -> tuple[Tensor, Tensor]:
        """Same contract as `DualGRUCell.forward`."""
        h = torch.cat([loc, raw_scale], dim=-1)
        u = self.project_update(update).expand_as(h)
        shape = h.shape
        h = self.cell(u.reshape(-1, shape[-1]), h.reshape(-1, shape[-1])).reshape(shape)
        return h.chunk(2, dim=-1)
