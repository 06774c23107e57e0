"""The model's vocabulary width: the tokenizer's size padded for GPU-friendly, TP-divisible shapes."""

from __future__ import annotations

from .errors import TokenizerError


def padded_vocab_size(
    orig_vocab_size: int, divisible_by: int, tensor_model_parallel_size: int
) -> int:
    """Round `orig_vocab_size` up to a multiple of `divisible_by * tensor_model_parallel_size`.

    The original pads so every TP rank holds an equal, nicely aligned slice of the embedding;
    the dummy rows are trained like any other column of the softmax.
    """
    if divisible_by < 1:
        raise TokenizerError(f"--make-vocab-size-divisible-by must be >= 1, got {divisible_by}")
    if tensor_model_parallel_size < 1:
        raise TokenizerError(
            f"--tensor-model-parallel-size must be >= 1, got {tensor_model_parallel_size}"
        )
    multiple = divisible_by * tensor_model_parallel_size
    return -(-int(orig_vocab_size) // multiple) * multiple


def padded_vocab_message(orig_vocab_size: int, padded_size: int) -> str:
    """The original's rank-0 line about the padding, e.g. ' > padded vocab (size: 50257) ...'."""
    return (
        f" > padded vocab (size: {orig_vocab_size}) with {padded_size - orig_vocab_size} "
        f"dummy tokens (new size: {padded_size})"
    )
