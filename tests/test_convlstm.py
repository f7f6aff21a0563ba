"""The ConvLSTM cell and stack: shapes, explicit state, validation, and the docstring examples."""
import doctest

import pytest
import torch

from SSL_convLSTM_Reconstructor import convlstm
from SSL_convLSTM_Reconstructor.convlstm import ConvLSTM, ConvLSTMCell


def test_docstring_examples_run():
    result = doctest.testmod(convlstm, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def test_cell_shapes_and_zero_state():
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 5, kernel_size=3)
    x = torch.rand(2, 3, 7, 9)  # odd sizes: same padding keeps them
    h, c = cell(x)
    assert h.shape == c.shape == (2, 5, 7, 9)
    h0, c0 = cell.init_state(2, (7, 9))
    h_explicit, c_explicit = cell(x, (h0, c0))
    assert torch.equal(h, h_explicit) and torch.equal(c, c_explicit)


def test_cell_uses_the_given_state():
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, kernel_size=3)
    x = torch.rand(2, 3, 6, 8)
    h_zero, c_zero = cell(x)
    state = (torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8))
    h, c = cell(x, state)
    assert not torch.allclose(h, h_zero, atol=1e-4)
    assert not torch.allclose(c, c_zero, atol=1e-4)
    # The state matters through the recurrence, not only through h: c alone changes the output too.
    h_c_only, _ = cell(x, (torch.zeros(2, 4, 6, 8), state[1]))
    assert not torch.allclose(h_c_only, h_zero, atol=1e-4)


def test_no_input_equals_zero_input():
    torch.manual_seed(0)
    cell = ConvLSTMCell(3, 4, kernel_size=5)
    state = (torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8))
    for a, b in zip(cell(None, state), cell(torch.zeros(2, 3, 6, 8), state)):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="needs x or a state"):
        cell(None)


def test_cell_gradients_reach_the_state():
    cell = ConvLSTMCell(2, 3)
    h0 = torch.randn(1, 3, 4, 4, requires_grad=True)
    c0 = torch.randn(1, 3, 4, 4, requires_grad=True)
    h, c = cell(torch.rand(1, 2, 4, 4), (h0, c0))
    (h.sum() + c.sum()).backward()
    assert h0.grad.abs().sum() > 0 and c0.grad.abs().sum() > 0


def test_zero_state_follows_weight_dtype_and_device():
    cell = ConvLSTMCell(3, 4).to(torch.float64)
    h, c = cell.init_state(2, (5, 6))
    assert h.dtype == c.dtype == torch.float64
    assert h.device == c.device == cell.conv.weight.device
    assert h.shape == (2, 4, 5, 6) and not h.any() and not c.any()
    h, c = cell(torch.rand(2, 3, 5, 6, dtype=torch.float64))  # the implicit zero state agrees
    assert h.dtype == torch.float64
    # A device other than the default (meta: no GPU needed) is followed as well.
    h, c = ConvLSTMCell(3, 4).to("meta").init_state(1, (2, 2))
    assert h.device.type == c.device.type == "meta"


@pytest.mark.parametrize("kernel_size", [2, 4, 0, -1, (3, 4), (2, 3)])
def test_even_or_bad_kernel_is_rejected(kernel_size):
    with pytest.raises(ValueError, match="odd"):
        ConvLSTMCell(3, 4, kernel_size=kernel_size)


@pytest.mark.parametrize("kwargs, match", [
    (dict(input_channels=0, hidden_channels=4), "input_channels"),
    (dict(input_channels=3, hidden_channels=0), "hidden_channels"),
    (dict(input_channels=3, hidden_channels=2.5), "hidden_channels"),
    (dict(input_channels=3, hidden_channels=4, kernel_size="3"), "kernel_size"),
    (dict(input_channels=3, hidden_channels=4, kernel_size=(3, 3, 3)), "kernel_size"),
])
def test_cell_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvLSTMCell(**kwargs)


def test_rectangular_odd_kernel():
    cell = ConvLSTMCell(2, 3, kernel_size=(1, 5))
    h, _ = cell(torch.rand(1, 2, 4, 6))
    assert h.shape == (1, 3, 4, 6)


def test_cell_rejects_wrong_input_channels():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        ConvLSTMCell(3, 4)(torch.rand(1, 2, 4, 4))


def test_stack_shapes():
    lstm = ConvLSTM(3, [4, 6, 5], kernel_size=[3, 5, 1])
    out, states = lstm(torch.rand(2, 7, 3, 9, 11))
    assert out.shape == (2, 7, 5, 9, 11)
    assert [tuple(h.shape) for h, _ in states] == [(2, 4, 9, 11), (2, 6, 9, 11), (2, 5, 9, 11)]
    assert [tuple(c.shape) for _, c in states] == [(2, 4, 9, 11), (2, 6, 9, 11), (2, 5, 9, 11)]
    assert torch.equal(out[:, -1], states[-1][0])  # the last output is the last layer's final h


def test_stack_with_initial_state_equals_stepping_the_cells_by_hand():
    torch.manual_seed(0)
    lstm = ConvLSTM(3, [4, 6], kernel_size=3)
    x = torch.rand(2, 5, 3, 6, 8)
    init = [(torch.randn(2, 4, 6, 8), torch.randn(2, 4, 6, 8)), (torch.randn(2, 6, 6, 8), torch.randn(2, 6, 6, 8))]
    out, states = lstm(x, init)

    hand = list(init)
    outs = []
    for t in range(x.shape[1]):
        inp = x[:, t]
        for l, cell in enumerate(lstm.cells):
            hand[l] = cell(inp, hand[l])
            inp = hand[l][0]
        outs.append(inp)
    torch.testing.assert_close(out, torch.stack(outs, dim=1))
    for (h, c), (h_ref, c_ref) in zip(states, hand):
        torch.testing.assert_close(h, h_ref)
        torch.testing.assert_close(c, c_ref)

    out_zero, _ = lstm(x)
    assert not torch.allclose(out, out_zero, atol=1e-4)  # the initial state is used


def test_stack_continues_a_sequence_and_accepts_none_per_layer():
    torch.manual_seed(0)
    lstm = ConvLSTM(2, [3, 4])
    x = torch.rand(1, 6, 2, 5, 5)
    whole, whole_states = lstm(x)
    first, states = lstm(x[:, :4])
    second, states = lstm(x[:, 4:], states)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(states[-1][1], whole_states[-1][1])
    # None for a layer means a zero state for that layer only.
    explicit = [lstm.cells[0].init_state(1, (5, 5)), states[1]]
    a, _ = lstm(x, [None, states[1]])
    b, _ = lstm(x, explicit)
    torch.testing.assert_close(a, b)


def test_stack_step_matches_forward():
    torch.manual_seed(0)
    lstm = ConvLSTM(2, [3, 4])
    x = torch.rand(2, 3, 2, 4, 4)
    out, states = lstm(x)
    state = None
    for t in range(3):
        h, state = lstm.step(x[:, t], state)
    torch.testing.assert_close(h, out[:, -1])
    torch.testing.assert_close(state[0][1], states[0][1])


def test_stack_step_without_input():
    torch.manual_seed(0)
    lstm = ConvLSTM(2, [3, 4])
    _, states = lstm(torch.rand(2, 3, 2, 4, 4))
    h, new = lstm.step(None, states)
    h_ref, new_ref = lstm.step(torch.zeros(2, 2, 4, 4), states)
    torch.testing.assert_close(h, h_ref)
    torch.testing.assert_close(new[0][1], new_ref[0][1])
    with pytest.raises(ValueError, match="full state"):
        lstm.step(None, [states[0], None])


@pytest.mark.parametrize("kwargs, match", [
    (dict(hidden_channels=[]), "empty"),
    (dict(hidden_channels=[4, 4], kernel_size=[3]), "kernel_size has 1 entries for 2 layers"),
    (dict(hidden_channels=[4, 4], kernel_size=[3, 2]), "odd"),
])
def test_stack_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvLSTM(3, **kwargs)


def test_stack_rejects_bad_state_and_input():
    lstm = ConvLSTM(3, [4, 5])
    x = torch.rand(2, 4, 3, 6, 6)
    with pytest.raises(ValueError, match="2 layers"):
        lstm(x, [None])
    with pytest.raises(ValueError, match=r"state\[1\] h has shape"):
        lstm(x, [None, (torch.zeros(2, 4, 6, 6), torch.zeros(2, 4, 6, 6))])
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        lstm(torch.rand(2, 3, 6, 6))
