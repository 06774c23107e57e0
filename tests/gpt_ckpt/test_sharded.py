"""gpt_ckpt's sharded checkpoints: blocks declared by one layout read back in any other, the
folder layouts of torch_dist / torch_dcp, crash safety, and one-line errors for damage."""

from __future__ import annotations

import json

import pytest
import torch
from gpt_ckpt import dist_dir
from gpt_ckpt.dist_dir import detect_format, load_sharded, read_common, save_sharded
from gpt_ckpt.global_tensors import iter_global_tensors, save_global_tensors
from gpt_ckpt.sharded import ShardedCheckpointError, ShardedObject, ShardedTensor, split_along

GLOBAL = torch.arange(48, dtype=torch.float32).reshape(8, 6)


def grid_blocks(rows: int, cols: int) -> list[ShardedTensor]:
    """GLOBAL cut into rows x cols blocks, each declared as if by its own rank."""
    h, w = 8 // rows, 6 // cols
    return [
        ShardedTensor(
            "w", GLOBAL[r * h : (r + 1) * h, c * w : (c + 1) * w].clone(), (8, 6), (r * h, c * w)
        )  # fmt: skip
        for r in range(rows)
        for c in range(cols)
    ]


@pytest.mark.parametrize("fmt", ["torch_dist", "torch_dcp"])
def test_blocks_saved_in_one_layout_read_back_in_another(tmp_path, fmt):
    folder = tmp_path / "iter_0000001"
    rng = ShardedObject("rng_state", {"seed": 7}, (2, 1), (1, 0))
    save_sharded(folder, fmt, grid_blocks(2, 3), [rng], {"iteration": 1})
    assert detect_format(folder) == fmt
    assert read_common(folder) == {"iteration": 1}
    for rank in range(4):  # a four-way row split
        block = ShardedTensor("w", torch.zeros(2, 6), (8, 6), (2 * rank, 0))
        load_sharded(folder, [block])
        assert torch.equal(block.data, GLOBAL[2 * rank : 2 * rank + 2])
    # stride 2 over three ranks along the columns: rank 1 holds columns [1] and [4]
    local = torch.zeros(8, 2)
    load_sharded(folder, split_along("w", local, dim=1, rank=1, size=3, stride=2))
    assert torch.equal(local, GLOBAL[:, [1, 4]])
    wanted = ShardedObject("rng_state", None, (2, 1), (1, 0))
    assert load_sharded(folder, [], [wanted]) == {"rng_state": {"seed": 7}}


def test_only_main_replicas_are_written(tmp_path):
    folder = tmp_path / "iter_0000001"
    copy = ShardedTensor("w", torch.full((8, 6), -1.0), (8, 6), (0, 0), main_replica=False)
    save_sharded(folder, "torch_dist", [ShardedTensor.whole("w", GLOBAL), copy], [], {})
    assert dict(iter_global_tensors(folder))["w"].equal(GLOBAL)


def test_torch_dist_folder_and_torch_dcp_for_torchs_own_tools(tmp_path):
    tensors = {"a": GLOBAL, "b": torch.tensor([1.5])}
    dist_folder = save_global_tensors(
        tmp_path / "d" / "iter_0000002", "torch_dist", tensors, {"x": 1}
    )
    assert sorted(p.name for p in dist_folder.iterdir()) == [
        ".metadata", "__0_0.distcp", "common.pt", "metadata.json"
    ]  # fmt: skip
    assert json.loads((dist_folder / "metadata.json").read_text()) == {
        "sharded_backend": "torch_dist", "sharded_backend_version": 1
    }  # fmt: skip
    got = dict(iter_global_tensors(dist_folder))
    assert got.keys() == tensors.keys() and all(torch.equal(got[k], tensors[k]) for k in got)

    dcp_folder = save_global_tensors(
        tmp_path / "p" / "iter_0000002", "torch_dcp", tensors, {"x": 1}
    )
    assert sorted(p.name for p in dcp_folder.iterdir()) == [".metadata", "__0_0.distcp"]
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    dcp_to_torch_save(dcp_folder, tmp_path / "whole.pt")
    whole = torch.load(tmp_path / "whole.pt", weights_only=False)
    assert torch.equal(whole["a"], GLOBAL) and whole["common_state/shard_0_1"] == {"x": 1}


def test_a_failed_save_leaves_the_previous_checkpoint_and_nothing_that_looks_valid(
    tmp_path, monkeypatch
):
    folder = tmp_path / "iter_0000001"
    save_sharded(folder, "torch_dist", grid_blocks(1, 1), [], {"iteration": 1})

    def broken(directory, tensors, objects, **kwargs):
        (directory / "__0_0.distcp").write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(dist_dir, "write_blocks", broken)
    with pytest.raises(OSError, match="disk full"):
        save_sharded(folder, "torch_dist", grid_blocks(2, 1), [], {"iteration": 2})
    assert read_common(folder) == {"iteration": 1}  # the old one, untouched
    partial = tmp_path / "iter_0000001.partial"
    assert not (partial / "metadata.json").exists()
    with pytest.raises(ShardedCheckpointError, match="holds no checkpoint"):
        detect_format(partial)


def test_damage_is_reported_in_one_line_naming_the_file(tmp_path):
    folder = tmp_path / "iter_0000001"
    save_sharded(folder, "torch_dist", grid_blocks(2, 2), [], {})
    block = ShardedTensor("w", torch.zeros(8, 6), (8, 6), (0, 0))
    with pytest.raises(ShardedCheckpointError, match="holds no tensor v"):
        load_sharded(folder, [ShardedTensor("v", torch.zeros(1), (1,), (0,))])
    with pytest.raises(ShardedCheckpointError, match=r"w has global shape \(8, 6\)"):
        load_sharded(folder, [ShardedTensor("w", torch.zeros(2, 6), (9, 6), (0, 0))])
    data = folder / "__0_0.distcp"
    data.write_bytes(data.read_bytes()[:50])
    with pytest.raises(ShardedCheckpointError, match=r"__0_0.distcp is truncated"):
        load_sharded(folder, [block])
    (folder / ".metadata").write_bytes(b"\x80\x04junk")
    with pytest.raises(ShardedCheckpointError, match=r"\.metadata is corrupt"):
        load_sharded(folder, [block])


def test_a_block_outside_its_tensor_is_refused():
    with pytest.raises(ShardedCheckpointError, match="outside"):
        ShardedTensor("w", torch.zeros(4, 6), (8, 6), (6, 0))


def test_zarr_holds_one_array_per_key_and_reshards(tmp_path):
    folder = tmp_path / "iter_0000003"
    rng = ShardedObject("rng_state", {"seed": 7}, (1, 2), (0, 1))
    half = torch.arange(6, dtype=torch.bfloat16)
    blocks = grid_blocks(2, 3) + [ShardedTensor.whole("h", half)]
    save_sharded(folder, "zarr", blocks, [rng], {"iteration": 3})
    assert json.loads((folder / "metadata.json").read_text())["sharded_backend"] == "zarr"
    assert {"w", "h", "common.pt", "rng_state"} <= {p.name for p in folder.iterdir()}
    block = ShardedTensor("w", torch.zeros(8, 3), (8, 6), (0, 3))
    objects = load_sharded(folder, [block], [ShardedObject("rng_state", None, (1, 2), (0, 1))])
    assert torch.equal(block.data, GLOBAL[:, 3:]) and objects == {"rng_state": {"seed": 7}}
    got = dict(iter_global_tensors(folder))
    assert got["h"].dtype == torch.bfloat16 and torch.equal(got["h"], half)
    assert read_common(folder) == {"iteration": 3}
