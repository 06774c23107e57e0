"""The README's second path: JSONL -> preprocess-data -> .bin/.idx -> pretrain, with the shipped
sample corpus and tokenizer."""

from __future__ import annotations

from pathlib import Path

from gpt_preprocess_data_app.main import main as preprocess

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "tiny-corpus"


def test_preprocessed_jsonl_trains_and_its_index_cache_is_written(tmp_path, pretrain, capsys):
    tokenizer = [
        "--tokenizer-type", "GPT2BPETokenizer",
        "--vocab-file", str(SAMPLE / "vocab.json"),
        "--merge-file", str(SAMPLE / "merges.txt"),
    ]  # fmt: skip
    prefix = tmp_path / "tiny"
    code = preprocess(
        ["--input", str(SAMPLE / "corpus.jsonl"), "--output-prefix", str(prefix), "--append-eod"]
        + tokenizer
    )
    assert code == 0
    data = f"{prefix}_text_document"
    assert Path(data + ".bin").stat().st_size > 100_000
    argv = tokenizer + [
        "--data-path", data, "--split", "98,2,0",
        "--num-layers", "2", "--hidden-size", "32", "--num-attention-heads", "4",
        "--seq-length", "64", "--max-position-embeddings", "64",
        "--micro-batch-size", "4", "--global-batch-size", "8",
        "--train-iters", "6", "--lr", "3e-3", "--log-interval", "2",
        "--eval-interval", "3", "--eval-iters", "1", "--num-workers", "0",
        "--transformer-impl", "local", "--distributed-backend", "gloo",
    ]  # fmt: skip
    code, trainer = pretrain(argv)
    assert code == 0
    assert len(trainer.history.lm_loss) == 6
    assert trainer.history.lm_loss[-1] < trainer.history.lm_loss[0]
    cache = Path(data) / "cache" / "GPTDataset_indices"
    assert sorted(p.name.split("-", 1)[1] for p in cache.glob("*-train-*")) == [
        "GPTDataset-train-description.txt",
        "GPTDataset-train-document_index.npy",
        "GPTDataset-train-sample_index.npy",
        "GPTDataset-train-shuffle_index.npy",
    ]
    assert " validation loss at iteration 3 | " in capsys.readouterr().out
