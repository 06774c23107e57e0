"""Pipeline parallelism: the schedules of the original (1F1B, interleaved 1F1B, forward only).

- ``order``: which passes ``("F" | "B", chunk, microbatch)`` one rank runs, in which order,
  the original's configuration checks, and the peak number of micro-batches in flight;
- ``plan``: the same order with the batched exchanges between passes;
- ``p2p``: ``PipelineP2P``, activations forward and gradients backward between neighbours;
- ``engine``: ``run_pipeline_schedule``, which runs a rank's plan with a ``forward_step``
  callback, and ``run_without_pipelining`` for a pipeline of one rank.

This ``__init__`` imports nothing, so ``order`` and ``plan`` stay importable without torch;
import the functions from their modules.
"""
