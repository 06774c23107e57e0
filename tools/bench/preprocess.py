"""Throughput and memory of `preprocess-data` on a generated English-like JSONL corpus.

Speed (default): writes a corpus (15 MB by default) and a small GPT-2 byte-level BPE trained on it
with the `tokenizers` library, then measures, interleaved and repeated (this machine is shared,
so the best of each is reported):
  - the tokenizer alone: GPT2BPETokenizer.tokenize on every document's text, already in memory;
  - preprocess-data with 1 and 2 workers, run as a user runs it (a subprocess), timed by its own
    `Done:` line (from the end of startup to the published outputs, as the original times itself).
MB/s always divides the JSONL file's size, so the overhead of the pipeline over raw tokenization
is `raw MB/s / pipeline MB/s - 1` with --workers 1.

Memory (--memory): peak resident memory of preprocess-data and its worker processes (summed over
the process tree, sampled every 20 ms) on a 50 MB and a 500 MB corpus; streaming means the two
peaks should be about the same.

    uv run --frozen python tools/bench/preprocess.py [--mb 15] [--repeats 5]
    uv run --frozen python tools/bench/preprocess.py --memory [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "apps" / "preprocess-data"
ORIGINAL_MBPS = 4.3  # the original's preprocess_data.py, --workers 2, measured earlier here
"""The original's tools/preprocess_data.py on this machine: 15 MB JSONL, small GPT-2 BPE, 2 workers."""

COMMON_WORDS = """the of and to a in that is was he for it with as his on be at by i this had not
are but from or have an they which one you were her all she there would their we him been has when
who will more no if out so said what up its about into than them can only other new some could
time these two may then do first any my now such like our over man me even most made after also
did many before must through back years where much your way well down should because each just
those people how too little state good very make world still own see men work long get here
between both life being under never day same another know while last might us great old year off
come since against go came right used take three states himself few house use during without
again place american around however home small found thought went say part once general high upon
school every don't does got united left number course war until always away something fact though
water less public put think almost hand enough far took head yet government system better set told
nothing night end why called didn't eyes find going look asked later knew point next program city
business give group toward young days let room president side social given present several order
national possible rather second face per among form important often things looking early white case
john become large big need four within felt along children saw best church ever least power
development light thing seemed family interest want members mind country area others done turned
although open problem""".split()

SYLLABLES = """ta re mo li ver sen ka do pri an el ist ou the ing ness pro con ly ed er ment tion a in
on al sta ble ri co mi na ge lo fu ber tra pe ho qua ex un de struc form port ial ous ive""".split()


def _vocabulary(rng: np.random.Generator, size: int = 12000) -> list[str]:
    words = list(dict.fromkeys(COMMON_WORDS))
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choice(SYLLABLES, size=int(rng.integers(1, 5))))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def _sentences(rng: np.random.Generator, count: int) -> list[str]:
    """A pool of varied sentences: Zipf-distributed words, numbers, commas, quotes, a few accents."""
    words = _vocabulary(rng)
    weights = 1.0 / np.arange(1, len(words) + 1) ** 1.1
    weights /= weights.sum()
    extras = ["café", "naïve", "résumé", "—", "(see below)", "e.g.", "U.S.", "3.14", "1,000"]
    out = []
    for _ in range(count):
        n = int(rng.integers(4, 28))
        chosen = [words[i] for i in rng.choice(len(words), size=n, p=weights)]
        chosen[0] = chosen[0].capitalize()
        if rng.random() < 0.25:
            chosen.insert(int(rng.integers(1, n)), str(int(rng.integers(0, 100000))))
        if rng.random() < 0.3:
            chosen[int(rng.integers(0, n - 1))] += ","
        if rng.random() < 0.05:
            chosen.insert(int(rng.integers(1, n)), str(rng.choice(extras)))
        sentence = " ".join(chosen) + str(rng.choice([".", ".", ".", ".", "?", "!"]))
        if rng.random() < 0.05:
            sentence = f'"{sentence}"'
        out.append(sentence)
    return out


def write_corpus(path: Path, megabytes: float, seed: int = 0) -> int:
    """Write a JSONL corpus of about `megabytes` MB; returns the number of documents."""
    rng = np.random.default_rng(seed)
    pool = np.array(_sentences(rng, 30000), dtype=object)
    target = int(megabytes * 2**20)
    written = documents = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            lengths = np.maximum(1, rng.lognormal(2.3, 0.9, size=100).astype(int))
            picks = rng.integers(0, len(pool), size=int(lengths.sum()))
            lines, start = [], 0
            for n in lengths:
                sentences = pool[picks[start : start + n]]
                start += n
                paragraphs = [" ".join(sentences[i : i + 5]) for i in range(0, len(sentences), 5)]
                text = "\n\n".join(paragraphs)
                lines.append(json.dumps({"id": documents, "text": text}) + "\n")
                documents += 1
            chunk = "".join(lines)
            out.write(chunk)
            written += len(chunk.encode("utf-8"))
    return documents


def train_gpt2_bpe(corpus: Path, directory: Path, vocab_size: int) -> tuple[str, str]:
    """vocab.json and merges.txt of a byte-level BPE trained on the corpus' first 4 MB."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    texts = []
    with open(corpus, encoding="utf-8") as f:
        size = 0
        for line in f:
            texts.append(json.loads(line)["text"])
            size += len(line)
            if size > 4 * 2**20:
                break
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    vocab, merges = tokenizer.model.save(str(directory))
    return vocab, merges


def tokenizer_flags(vocab: str, merges: str) -> list[str]:
    return ["--tokenizer-type", "GPT2BPETokenizer", "--vocab-file", vocab, "--merge-file", merges]


DONE = re.compile(
    r"Done: (\d+) documents, ([\d.]+) MB in ([\d.]+) s \(([\d.]+) docs/s, ([\d.]+) MB/s\)"
)


def run_app(args: list[str]) -> tuple[float, float, float]:
    """Run preprocess-data; returns (its MB/s, its docs/s, wall seconds of the whole command)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(APP), *args], capture_output=True, text=True, cwd=ROOT
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"preprocess-data failed ({done.returncode}): {done.stderr.strip()}")
    match = DONE.search(done.stderr)
    if match is None:
        raise SystemExit(f"no 'Done:' line in preprocess-data's output:\n{done.stderr}")
    return float(match.group(5)), float(match.group(4)), wall


def raw_tokenizer(corpus: Path, vocab: str, merges: str) -> tuple[float, float, float, float]:
    """GPT2BPETokenizer.tokenize over every text, already in memory.

    Returns (MB/s of the JSONL file, docs/s, CPU seconds tokenizing, CPU seconds building).
    """
    from gpt_tokenizers import TokenizerFlags, build_tokenizer

    cpu = time.process_time()
    tok = build_tokenizer(
        TokenizerFlags(tokenizer_type="GPT2BPETokenizer", vocab_file=vocab, merge_file=merges)
    )
    build_cpu = time.process_time() - cpu
    with open(corpus, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    tokenize = tok.tokenize
    started, cpu = time.perf_counter(), time.process_time()
    for text in texts:
        tokenize(text)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return corpus.stat().st_size / elapsed / 2**20, len(texts) / elapsed, cpu, build_cpu


def pipeline_cpu(args: list[str]) -> float:
    """CPU seconds of preprocess-data --workers 1 run in this process (everything but imports)."""
    import contextlib
    import io

    from gpt_preprocess_data_app.main import main as preprocess

    sink = io.StringIO()
    cpu = time.process_time()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        code = preprocess(args)
    if code != 0:
        raise SystemExit(f"preprocess-data failed ({code}): {sink.getvalue().strip()}")
    return time.process_time() - cpu


def speed(args: argparse.Namespace, work: Path) -> None:
    corpus = work / "corpus.jsonl"
    documents = write_corpus(corpus, args.mb)
    vocab, merges = train_gpt2_bpe(corpus, work, args.vocab_size)
    size_mb = corpus.stat().st_size / 2**20
    print(f"corpus: {size_mb:.1f} MB, {documents} documents; GPT-2 BPE vocab {args.vocab_size}")
    results: dict[str, list[tuple[float, float, float]]] = {"raw": [], "w1": [], "w2": []}
    cpu: dict[str, list[float]] = {"raw": [], "w1": []}
    for _ in range(args.repeats):
        mbps, docs, raw_cpu, build_cpu = raw_tokenizer(corpus, vocab, merges)
        results["raw"].append((mbps, docs, 0.0))
        cpu["raw"].append(raw_cpu)
        for workers in (1, 2):
            out = str(work / f"out_w{workers}")
            flags = ["--input", str(corpus), "--output-prefix", out, "--workers", str(workers)]
            flags += ["--append-eod", "--log-interval", "100000000"]
            flags += tokenizer_flags(vocab, merges)
            results[f"w{workers}"].append(run_app(flags))
            if workers == 1:  # the same run in this process, for its CPU time
                flags[flags.index(out)] = str(work / "out_cpu")
                cpu["w1"].append(pipeline_cpu(flags) - build_cpu)
    same = all(
        (work / f"out_w1_text_document{ext}").read_bytes()
        == (work / f"out_w2_text_document{ext}").read_bytes()
        for ext in (".bin", ".idx")
    )

    def best(name: str) -> tuple[float, float, float]:
        return max(results[name], key=lambda r: r[0])

    raw, w1, w2 = best("raw"), best("w1"), best("w2")
    print(f"{'':26}{'MB/s':>8}{'docs/s':>10}   (best of {args.repeats}; median MB/s)")
    for label, name, row in (
        ("tokenizer alone", "raw", raw),
        ("preprocess-data -w 1", "w1", w1),
        ("preprocess-data -w 2", "w2", w2),
    ):
        median = statistics.median(r[0] for r in results[name])
        wall = f"  whole command {row[2]:.2f} s" if row[2] else ""
        print(f"{label:26}{row[0]:8.2f}{row[1]:10.0f}   ({median:.2f}){wall}")
    raw_cpu, w1_cpu = min(cpu["raw"]), min(cpu["w1"])
    # Each repeat runs the tokenizer and the pipeline back to back: the ratio within a pair is
    # less exposed to the machine's load changing between repeats than best vs best.
    paired_wall = statistics.median(r[0] / p[0] - 1 for r, p in zip(results["raw"], results["w1"]))
    paired_cpu = statistics.median(p / r - 1 for r, p in zip(cpu["raw"], cpu["w1"]))
    print("pipeline overhead over raw tokenization, 1 worker:")
    print(
        f"  best vs best: {(raw[0] / w1[0] - 1) * 100:.1f}% by wall clock, "
        f"{(w1_cpu / raw_cpu - 1) * 100:.1f}% by CPU time ({w1_cpu:.2f} s vs {raw_cpu:.2f} s, "
        "tokenizer build excluded)"
    )
    print(
        f"  median of the {args.repeats} back-to-back pairs: {paired_wall * 100:.1f}% by wall "
        f"clock, {paired_cpu * 100:.1f}% by CPU time"
    )
    print(
        f"2 workers vs the original's {ORIGINAL_MBPS} MB/s (recorded earlier, not this run): {w2[0] / ORIGINAL_MBPS:.2f}x"
    )
    print(f"outputs of 1 and 2 workers identical: {same}")


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def _tree_memory_kb(pid: int) -> tuple[int, int]:
    """(sum of RSS, sum of PSS) in kB over `pid` and all its descendants."""
    rss = pss = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
        stack.extend(_children(p))
    return rss, pss


def peak_memory(args: list[str]) -> tuple[int, int, float]:
    """Run preprocess-data, sampling its process tree; returns (peak RSS kB, peak PSS kB, seconds)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, str(APP), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = [0, 0]

    def sample() -> None:
        while proc.poll() is None:
            rss, pss = _tree_memory_kb(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"preprocess-data failed ({proc.returncode}): {err.strip()}")
    return peak[0], peak[1], time.perf_counter() - started


def memory(args: argparse.Namespace, work: Path) -> None:
    small, large = work / "small.jsonl", work / "large.jsonl"
    write_corpus(small, 50, seed=1)
    vocab, merges = train_gpt2_bpe(small, work, args.vocab_size)
    write_corpus(large, 500, seed=2)
    peaks = {}
    for name, corpus in (("50 MB", small), ("500 MB", large)):
        flags = ["--input", str(corpus), "--output-prefix", str(work / name.replace(" ", ""))]
        flags += ["--workers", str(args.workers), "--append-eod"]
        rss, pss, seconds = peak_memory(flags + tokenizer_flags(vocab, merges))
        size = corpus.stat().st_size / 2**20
        peaks[name] = rss
        print(
            f"{name} corpus ({size:.0f} MB, --workers {args.workers}): peak RSS {rss / 1024:.1f} MB "
            f"(PSS {pss / 1024:.1f} MB) over all processes, {seconds:.1f} s"
        )
    ratio = peaks["500 MB"] / peaks["50 MB"]
    print(f"peak RSS ratio 500 MB / 50 MB: {ratio:.3f} ({abs(ratio - 1) * 100:.1f}% apart)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory", action="store_true", help="measure peak memory instead")
    parser.add_argument("--mb", type=float, default=15, help="corpus size for the speed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocab-size", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=2, help="workers for --memory")
    parser.add_argument("--workdir", default=None, help="keep files here (default: a temp dir)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; load average before: {_load()}")
    with tempfile.TemporaryDirectory(dir=args.workdir) as work:
        (memory if args.memory else speed)(args, Path(work))
    print(f"load average after: {_load()} (other work on a shared machine slows some runs)")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
