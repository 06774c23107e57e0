"""DocumentCollector: documents packed into one little-endian buffer that grows as needed."""

from __future__ import annotations

import numpy as np
import pytest
from gpt_preprocess_data_app.collect import DocumentCollector


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_documents_past_the_initial_capacity_come_back_intact(dtype):
    rng = np.random.default_rng(0)
    collector = DocumentCollector(np.dtype(dtype), eod=7, capacity=16)
    docs = [[rng.integers(0, 60000, size=int(n)).tolist() for n in rng.integers(0, 40, size=k)]
            for k in rng.integers(0, 4, size=60)]  # fmt: skip
    for i, sentences in enumerate(docs):
        if len(sentences) == 1 and i % 2:
            collector.add_one(sentences[0])
        else:
            collector.add(sentences)
    got = collector.finish()
    kept = [[s for s in doc if s] for doc in docs]
    for doc in kept:
        if doc:
            doc[-1] = doc[-1] + [7]
    assert got.tokens.dtype == np.dtype(dtype).newbyteorder("<")
    assert got.tokens.tolist() == [t for doc in kept for s in doc for t in s]
    assert got.sequence_lengths.tolist() == [len(s) for doc in kept for s in doc]
    assert got.sequences_per_document.tolist() == [len(doc) for doc in kept]
    assert len(collector) == len(docs)


@pytest.mark.parametrize("ids", [[1, 65536], [-1]])
def test_id_outside_the_dtype_is_an_overflow_error(ids):
    collector = DocumentCollector(np.dtype(np.uint16), eod=None)
    with pytest.raises(OverflowError, match="do not fit uint16"):
        collector.add_one(ids)
