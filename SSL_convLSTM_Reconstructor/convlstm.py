"""ConvLSTM (Shi et al., 2015): the cell and a stack of cells over a (B, T, C, H, W) sequence.

The only ConvLSTM in the repository: the frame reconstructor uses it.
The cell is a tiny module with explicit (h, c) state in and out and one fused convolution for
the four gates; the stack can start from a given state per layer (to continue a sequence, or
to roll forward with no input) and returns the final (h, c) of every layer.

>>> import torch
>>> cell = ConvLSTMCell(3, 8, kernel_size=3)
>>> x = torch.rand(2, 3, 16, 24)                    # (B, C, H, W): one time step
>>> h, c = cell(x)                                  # zero state when none is given
>>> h.shape, c.shape
(torch.Size([2, 8, 16, 24]), torch.Size([2, 8, 16, 24]))
>>> h, c = cell(x, (h, c))                          # the next step continues from that state
>>> lstm = ConvLSTM(3, [8, 16], kernel_size=[3, 5])
>>> seq = torch.rand(2, 11, 3, 16, 24)              # (B, T, C, H, W)
>>> out, states = lstm(seq)
>>> out.shape                                       # last layer's h at every step
torch.Size([2, 11, 16, 16, 24])
>>> [tuple(h.shape) for h, c in states]             # final (h, c) of each layer
[(2, 8, 16, 24), (2, 16, 16, 24)]
>>> more, states = lstm(torch.rand(2, 5, 3, 16, 24), states)   # continue the same sequence
>>> more.shape
torch.Size([2, 5, 16, 16, 24])
>>> h, states = lstm.step(None, states)             # one step with no input (as zeros, cheaper)
>>> h.shape
torch.Size([2, 16, 16, 24])
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

State = Tuple[torch.Tensor, torch.Tensor]  # (h, c), each (B, hidden, H, W)


def _kernel_pair(kernel_size, what: str = "kernel_size") -> Tuple[int, int]:
    """int or (kh, kw) -> (kh, kw), both positive and odd (so 'same' padding keeps H, W)."""
    pair = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(pair) != 2 or not all(isinstance(k, int) and not isinstance(k, bool) for k in pair):
        raise ValueError(f"{what} must be an int or a pair of ints, got {kernel_size!r}")
    if any(k < 1 or k % 2 == 0 for k in pair):
        raise ValueError(
            f"{what} must be odd and positive (same padding keeps the spatial size), got {kernel_size!r}; "
            f"use 1, 3, 5, ..."
        )
    return pair


def positive_int(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{what} must be a positive int, got {value!r}")
    return value


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: (x_t, (h, c)) -> (h', c').

    x: (B, input_channels, H, W) or None (no input); h, c: (B, hidden_channels, H, W). One convolution over
    [x, h] gives the input, forget, output and candidate gates together.
    forget_bias is added to the forget gate's bias at init (1.0 is the usual choice: the cell
    starts by remembering, which helps gradients through long sequences).
    """

    def __init__(self, input_channels: int, hidden_channels: int, kernel_size=3, bias: bool = True,
                 forget_bias: float = 1.0):
        super().__init__()
        self.input_channels = positive_int(input_channels, "input_channels")
        self.hidden_channels = positive_int(hidden_channels, "hidden_channels")
        self.kernel_size = _kernel_pair(kernel_size)
        padding = (self.kernel_size[0] // 2, self.kernel_size[1] // 2)
        self.conv = nn.Conv2d(self.input_channels + self.hidden_channels, 4 * self.hidden_channels,
                              self.kernel_size, padding=padding, bias=bias)
        if bias:
            with torch.no_grad():
                # gate order in the fused output: input, forget, output, candidate
                self.conv.bias[self.hidden_channels:2 * self.hidden_channels].add_(forget_bias)

    def init_state(self, batch_size: int, size: Tuple[int, int]) -> State:
        """Zero (h, c) of shape (B, hidden, H, W) on the weight's device and dtype."""
        w = self.conv.weight
        h = torch.zeros(batch_size, self.hidden_channels, size[0], size[1], device=w.device, dtype=w.dtype)
        return h, torch.zeros_like(h)

    def forward(self, x: Optional[torch.Tensor], state: Optional[State] = None) -> State:
        """x (B, input_channels, H, W), or None for no input (the same as zeros, without their cost)."""
        if x is None:
            if state is None:
                raise ValueError("ConvLSTMCell needs x or a state: with neither the shape is unknown")
            h, c = state
            # Zero input: only the hidden half of the fused kernel contributes.
            gates = F.conv2d(h, self.conv.weight[:, self.input_channels:], self.conv.bias, padding=self.conv.padding)
        else:
            if x.dim() != 4 or x.shape[1] != self.input_channels:
                raise ValueError(
                    f"ConvLSTMCell expects x of shape (B, {self.input_channels}, H, W), got {tuple(x.shape)}"
                )
            h, c = self.init_state(x.shape[0], x.shape[-2:]) if state is None else state
            gates = self.conv(torch.cat([x, h], dim=1))  # (B, 4 * hidden, H, W)
        i, f, o, g = gates.chunk(4, dim=1)  # each (B, hidden, H, W)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c


def _per_layer(value, num_layers: int, what: str) -> list:
    """A single value for every layer, or a list/tuple with exactly one entry per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != num_layers:
            raise ValueError(f"{what} has {len(value)} entries for {num_layers} layers: give one per layer or a single int")
        return list(value)
    return [value] * num_layers


class ConvLSTM(nn.Module):
    """A stack of ConvLSTM cells run over a sequence.

    input_channels: channels of each input frame; hidden_channels: an int (one layer) or a list
    (one entry per layer; layer l+1 takes layer l's h as input); kernel_size: an odd int for
    every layer, or a list with one entry (int or (kh, kw)) per layer.

    forward(x (B, T, C, H, W), state=None) -> (out (B, T, hidden[-1], H, W), [(h, c)] per layer)
    state: None, or a list with one (h, c) or None per layer (None: zero state for that layer).
    T may be 0 only when a state is given (nothing to do; the state comes back unchanged).
    """

    def __init__(self, input_channels: int, hidden_channels: Union[int, Sequence[int]], kernel_size=3,
                 bias: bool = True, forget_bias: float = 1.0):
        super().__init__()
        hidden = [hidden_channels] if isinstance(hidden_channels, int) else list(hidden_channels)
        if not hidden:
            raise ValueError("hidden_channels is empty: give at least one layer's width")
        kernels = _per_layer(kernel_size, len(hidden), "kernel_size")
        in_chs = [input_channels] + hidden[:-1]
        self.cells = nn.ModuleList(
            ConvLSTMCell(i, h, k, bias=bias, forget_bias=forget_bias) for i, h, k in zip(in_chs, hidden, kernels)
        )
        self.input_channels = input_channels
        self.hidden_channels = hidden

    @property
    def num_layers(self) -> int:
        return len(self.cells)

    def _check_state(self, state, batch_size: int, size) -> List[Optional[State]]:
        if state is None:
            return [None] * self.num_layers
        state = list(state)
        if len(state) != self.num_layers:
            raise ValueError(f"state has {len(state)} entries for {self.num_layers} layers: one (h, c) or None per layer")
        for l, (s, cell) in enumerate(zip(state, self.cells)):
            if s is None:
                continue
            expected = (batch_size, cell.hidden_channels, *size)
            for name, t in zip("hc", s):
                if tuple(t.shape) != expected:
                    raise ValueError(f"state[{l}] {name} has shape {tuple(t.shape)}, expected {expected}")
        return state

    def step(self, x: Optional[torch.Tensor], state=None) -> Tuple[torch.Tensor, List[State]]:
        """One time step through every layer: x (B, C, H, W) -> (h of the last layer, [(h, c)] per layer).

        x None: no input (zeros), e.g. to roll the stack forward past the last frame; needs a full state.
        """
        if x is None:
            if state is None or any(s is None for s in state):
                raise ValueError("step(None, state) rolls forward without input and needs a full state (one (h, c) per layer)")
            h0 = state[0][0]
            state = self._check_state(state, h0.shape[0], h0.shape[-2:])
        else:
            state = self._check_state(state, x.shape[0], x.shape[-2:])
        new_state = []
        for cell, s in zip(self.cells, state):
            h, c = cell(x, s)
            new_state.append((h, c))
            x = h
        return x, new_state

    def forward(self, x: torch.Tensor, state=None) -> Tuple[torch.Tensor, List[State]]:
        if x.dim() != 5 or x.shape[2] != self.input_channels:
            raise ValueError(f"ConvLSTM expects x of shape (B, T, {self.input_channels}, H, W), got {tuple(x.shape)}")
        state = self._check_state(state, x.shape[0], x.shape[-2:])
        if x.shape[1] == 0:
            if any(s is None for s in state):
                raise ValueError("an empty sequence (T = 0) needs a full initial state to return")
            return x.new_zeros(x.shape[0], 0, self.hidden_channels[-1], *x.shape[-2:]), state
        outputs = []
        for t in range(x.shape[1]):
            h, state = self.step(x[:, t], state)
            outputs.append(h)
        return torch.stack(outputs, dim=1), state  # (B, T, hidden[-1], H, W)
