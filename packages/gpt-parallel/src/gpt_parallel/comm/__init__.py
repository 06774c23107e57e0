"""The collectives of every kind of parallelism, in one place, each counting the bytes it sends.

Why one place: tensor, sequence, context and data parallelism all pay in communication, and
the byte counter (``volume.count_bytes``) can only prove a claim about "bytes per step" if
every collective of the step reports to it. The modules, smallest first:

- ``volume``: the counter and the ring closed forms (standard library only, no torch);
- ``groups``: size and rank of a group that may be ``None`` (this rank alone), and ``report``;
- ``basic``: whole-tensor all-reduce (in place or into a copy) and ``all_gather_object``;
- ``along_dim``: split, all-gather, reduce-scatter and all-to-all along a tensor dimension;
- ``flat``: in-place collectives on one flat buffer with async handles (data parallelism);
- ``p2p``: the ring exchange of context parallelism.

This ``__init__`` imports nothing, so ``gpt_parallel.comm.volume`` stays importable without
torch; import the functions from their modules.
"""
