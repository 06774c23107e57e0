"""The original converter's vocabulary padding (saver_core's ``pad_weight``).

With a true vocabulary size the table is cut or grown to that size rounded up to
``make_vocab_size_divisible_by * tensor-parallel size``, new rows repeating the last one (as
the original grows it); without one, the table is kept as it is and must split evenly.
"""

from __future__ import annotations

import torch

from .errors import ArgsError


def padded_vocab_size(true_vocab_size: int, divisible_by: int, tensor_parallel: int) -> int:
    """``true_vocab_size`` rounded up to a multiple of ``divisible_by * tensor_parallel``."""
    multiple = divisible_by * tensor_parallel
    return -(-true_vocab_size // multiple) * multiple


def target_rows(
    rows: int, true_vocab_size: int | None, divisible_by: int, tensor_parallel: int
) -> int:
    """How many embedding rows the saved table gets."""
    if true_vocab_size is None:
        if rows % tensor_parallel:
            raise ArgsError(
                f"the embedding has {rows} rows, which do not split over "
                f"--target-tensor-parallel-size {tensor_parallel}; give --true-vocab-size"
            )
        return rows
    if true_vocab_size > rows:
        raise ArgsError(f"--true-vocab-size {true_vocab_size} exceeds the {rows} embedding rows")
    return padded_vocab_size(true_vocab_size, divisible_by, tensor_parallel)


def resize_rows(table: torch.Tensor, rows: int) -> torch.Tensor:
    """``table`` cut to ``rows`` rows, or grown by repeating its last row."""
    if table.shape[0] >= rows:
        return table[:rows]
    extra = table[-1:].expand(rows - table.shape[0], *table.shape[1:])
    return torch.cat((table, extra))
