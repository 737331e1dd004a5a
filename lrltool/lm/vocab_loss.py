"""Cross-entropy over a large, frozen vocabulary projection, chunk by chunk, with its gradient made in the
forward pass.

Language-adapter training scores the masked (MLM) or next (CLM) tokens against the whole vocabulary: for
XLM-R that is a 250,002-wide projection whose weight (the input embeddings) and bias are frozen. PyTorch's
``F.cross_entropy(head(states))`` keeps the rows x vocabulary logits, makes a log-softmax copy of them,
a zero-filled gradient of the same size and a second pass for the softmax backward. Here the logits
are made one tile (some rows x a slice of the vocabulary) at a time, in one reused buffer the size of a
core's cache on the CPU, and folded into an online softmax: the loss ``logsumexp - logit[target]`` and,
when the states need a gradient, the states' gradient ``(softmax - onehot) @ weight`` (rows x hidden,
small), kept for the backward pass, which only scales it. The same values and gradients as
``F.cross_entropy(..., reduction="sum")`` (tests/test_train.py), with no rows x vocabulary tensor. On the
250k-vocabulary benchmark model a call takes about 60% of the time whole rows of logits took, and a
training step 70-75% (docs/design.md "Models and adapters", benchmarks/README.md).

Used only where the projection is frozen (adapters; not ``--method full``, which trains the embeddings).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

#: Logits held at once off the CPU (CUDA): a tile of rows x columns of the vocabulary is at most this big.
CHUNK_BYTES = 256 << 20
#: On the CPU a tile the size of a core's L2 cache: its ``exp`` and its product with the weight's columns
#: then read it from the cache instead of memory (docs/design.md "Models and adapters").
CPU_CHUNK_BYTES = 512 << 10
#: Rows per tile at most: on the CPU, 512 (measured best with the tile above); elsewhere 8,192.
CPU_ROWS, ROWS = 512, 8192


def frozen(projection: Any) -> bool:
    """Whether ``projection`` (a Linear) has no trainable weight or bias."""
    bias = getattr(projection, "bias", None)
    return not projection.weight.requires_grad and (bias is None or not bias.requires_grad)


@contextlib.contextmanager
def projection_input(projection: Any) -> Iterator[None]:
    """While inside, ``projection`` returns its input: its forward pre-hooks still run (the invertible
    adapter's inverse is one, models/adapters.py ``ensure_inverse_hook``), so the head it ends returns
    exactly what the projection would have been applied to."""
    projection.forward = lambda hidden: hidden
    try:
        yield
    finally:
        del projection.forward  # the class's forward again


def cross_entropy_sum(states: Any, projection: Any, targets: Any) -> Any:
    """``F.cross_entropy(projection(states).float(), targets, reduction="sum")`` for a frozen projection."""
    return _FrozenProjectionCrossEntropy.apply(states, projection.weight, projection.bias, targets)


def tile_shape(rows: int, vocabulary: int, device_type: str) -> tuple[int, int]:
    """Rows and vocabulary columns per tile: rows split evenly into parts of at most ``CPU_ROWS`` (CPU) or
    ``ROWS``, columns filling ``CPU_CHUNK_BYTES`` or ``CHUNK_BYTES`` of fp32 logits (at least 64)."""
    cpu = device_type == "cpu"
    most = CPU_ROWS if cpu else ROWS
    parts = -(-max(rows, 1) // most)
    tile_rows = -(-max(rows, 1) // parts)
    columns = (CPU_CHUNK_BYTES if cpu else CHUNK_BYTES) // (4 * tile_rows)
    return tile_rows, min(vocabulary, max(64, columns))


def _loss_and_grad(states: Any, weight: Any, bias: Any, targets: Any, need_grad: bool) -> tuple[Any, Any]:
    """The summed loss and, with ``need_grad``, the states' gradient ``(softmax - onehot) @ weight``.

    Tile by tile (rows x a slice of the vocabulary, ``tile_shape``), with the running maximum, sum and
    gradient of an online softmax (as in FlashAttention): logits of the tile into one reused buffer;
    ``e = exp(logits - max)`` in place; ``s += e.sum()``; ``acc += e @ W[slice]``, with ``s`` and ``acc``
    rescaled by ``exp(old max - new max)`` when a row's maximum grows; the target's logit is taken from the
    tile that holds it. Then loss ``max + log s - logit[target]`` and gradient ``acc / s - W[target]``.
    Each tile is written, exponentiated and multiplied while it is in the cache, and no rows x vocabulary
    tensor exists. At the benchmark's shape (608-614 masked rows, 250,002 x 256, one thread) a call took
    2.9-3.4 s against 4.6-4.7 s for whole rows of logits in one buffer (docs/design.md "Models and
    adapters").
    """
    import torch

    rows, hidden = states.shape
    tile_rows, columns = tile_shape(rows, weight.shape[0], states.device.type)
    fast = states.dtype == torch.float32 and weight.dtype == torch.float32
    f32 = {"dtype": torch.float32, "device": states.device}
    total = torch.zeros((), **f32)
    grad = torch.empty_like(states) if need_grad else None
    buffer = torch.empty(tile_rows * columns, **f32) if fast else None
    with torch.no_grad():
        for begin in range(0, rows, tile_rows):
            chunk = states[begin : begin + tile_rows]
            wanted = targets[begin : begin + tile_rows]
            n = len(chunk)
            peak = torch.full((n,), -torch.inf, **f32)
            sums = torch.zeros(n, **f32)
            target_logits = torch.empty(n, **f32)
            acc = torch.zeros(n, hidden, **f32) if need_grad else None
            # the rows whose target lies in each slice of columns, found once: order[bounds[k]:bounds[k+1]]
            ordered, order = wanted.sort()
            starts = torch.arange(0, weight.shape[0] + columns, columns, device=states.device)
            bounds = torch.searchsorted(ordered, starts).tolist()
            for k, first in enumerate(range(0, weight.shape[0], columns)):
                part = weight[first : first + columns]
                part_bias = None if bias is None else bias[first : first + columns]
                if fast:
                    logits = buffer[: n * len(part)].view(n, len(part))
                    if part_bias is None:
                        torch.mm(chunk, part.t(), out=logits)
                    else:
                        torch.addmm(part_bias, chunk, part.t(), out=logits)
                else:  # bf16/fp16 states or weight (autocast): the projection in their precision, then fp32
                    logits = torch.nn.functional.linear(chunk, part, part_bias).float()
                if bounds[k + 1] > bounds[k]:
                    hit = order[bounds[k] : bounds[k + 1]]
                    target_logits[hit] = logits[hit, wanted[hit] - first]
                new_peak = torch.maximum(peak, logits.amax(dim=1))
                rescale = (peak - new_peak).exp_()
                exps = logits.sub_(new_peak[:, None]).exp_()  # in the logits' memory
                sums.mul_(rescale).add_(exps.sum(dim=1))
                if acc is not None:
                    acc.mul_(rescale[:, None])
                    if fast:
                        acc.addmm_(exps, part)
                    else:
                        acc.add_((exps.to(weight.dtype) @ part).float())
                peak = new_peak
            total += (peak + sums.log() - target_logits).sum()
            if grad is not None:
                grad[begin : begin + n] = (acc / sums[:, None] - weight[wanted].float()).to(grad.dtype)
    return total, grad


class _FrozenProjectionCrossEntropy:
    """The autograd function, built on first use (torch is imported lazily, docs/design.md)."""

    _function: Any = None

    @classmethod
    def apply(cls, states: Any, weight: Any, bias: Any, targets: Any) -> Any:
        if cls._function is None:
            cls._function = _build_function()
        return cls._function.apply(states, weight, bias, targets)


def _build_function() -> Any:
    import torch

    class FrozenProjectionCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, states: Any, weight: Any, bias: Any, targets: Any) -> Any:
            loss, grad = _loss_and_grad(states, weight, bias, targets, ctx.needs_input_grad[0])
            ctx.save_for_backward(grad if grad is not None else states.new_empty(0))
            return loss

        @staticmethod
        def backward(ctx: Any, grad_loss: Any) -> tuple[Any, None, None, None]:
            (grad,) = ctx.saved_tensors
            return (grad * grad_loss).to(grad.dtype), None, None, None

    return FrozenProjectionCrossEntropy
