"""Command-line entry point: parse, check, stream the input through the encoders into the builders.

Exit codes: 0 done, 2 a usage or input error (one line on stderr, no outputs written),
130 / 143 stopped by SIGINT (Ctrl-C) / SIGTERM (no outputs written).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

from gpt_data.indexed_dataset import optimal_dtype
from gpt_tokenizers import TokenizerError

from .cli import build_parser, job_from_args
from .encode import Encoder, EncodeSettings, build_job_tokenizer
from .errors import PreprocessError
from .inputs import expand_inputs, input_size, iter_batches
from .job import PreprocessJob
from .parallel import Encoders
from .progress import Progress
from .sentences import load_sentence_splitter
from .signals import Interrupted, SignalGuard
from .writer import DatasetWriter


def _check_output_directory(prefix: str) -> None:
    directory = os.path.dirname(os.path.abspath(prefix))
    if not os.path.isdir(directory):
        raise PreprocessError(f"--output-prefix: directory does not exist: {directory}")
    if not os.access(directory, os.W_OK):
        raise PreprocessError(f"--output-prefix: directory is not writable: {directory}")


def run(
    job: PreprocessJob, progress: Progress | None = None, guard: SignalGuard | None = None
) -> list[str]:
    """Preprocess `job`; returns the output prefixes. Raises PreprocessError on bad input.

    With `guard`, interruptions are held back while the outputs are published.
    """
    startup = time.perf_counter()
    paths = expand_inputs(job.input)
    _check_output_directory(job.output_prefix)
    tokenizer = build_job_tokenizer(job.tokenizer)
    if job.append_eod:
        try:
            tokenizer.eod  # noqa: B018 - fail before any work if there is no eod id
        except NotImplementedError:
            raise PreprocessError(
                f"--append-eod: --tokenizer-type {job.tokenizer.tokenizer_type} has no eod token"
            ) from None
    if job.split_sentences:
        load_sentence_splitter(job.lang, job.keep_newlines)  # one-line error before any work
    dtype = optimal_dtype(tokenizer.vocab_size)
    settings = EncodeSettings(
        json_keys=job.json_keys,
        tokenizer=job.tokenizer,
        dtype=dtype.name,
        append_eod=job.append_eod,
        split_sentences=job.split_sentences,
        keep_newlines=job.keep_newlines,
        lang=job.lang,
        partitions=job.round_robin_partitions,
        skip_bad_lines=job.skip_bad_lines,
    )
    progress = progress or Progress(job.log_interval, input_size(paths))
    encoder = Encoder(settings, tokenizer)
    writer = DatasetWriter(
        job.output_prefix, job.json_keys, job.level, dtype, job.round_robin_partitions
    )
    held = guard.deferred if guard is not None else contextlib.nullcontext
    skipped, first_skipped = 0, None
    try:
        with Encoders(settings, job.workers, encoder) as encoders:
            batches = iter_batches(
                paths, job.json_keys, on_open=lambda path: progress.note(f"Opening {path}")
            )
            progress.note(f"Time to startup: {time.perf_counter() - startup}")
            progress.start()
            for result in encoders.map(batches):
                if result.error is not None:
                    raise PreprocessError(result.error)
                writer.write(result)
                skipped += result.skipped
                first_skipped = first_skipped or result.first_skipped
                progress.update(result.documents, result.nbytes)
        outputs = writer.finalize(held)
    except BaseException:
        with held():  # a second Ctrl-C must not stop the cleanup
            writer.abort()
        raise
    finally:
        summary = progress.close()
    print(summary, file=sys.stderr)
    if skipped:
        print(
            f"Skipped {skipped} bad lines (--skip-bad-lines); first: {first_skipped}",
            file=sys.stderr,
        )
    for prefix in outputs:
        print(f"Wrote {prefix}.bin and {prefix}.idx")
    return outputs


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with `argv` (default sys.argv[1:]); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        with SignalGuard() as guard:
            run(job_from_args(args), guard=guard)
    except (PreprocessError, TokenizerError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Interrupted as stop:
        if stop.held:  # it came while the outputs were being published: they were finished
            print(f"interrupted ({stop}) after the outputs were written", file=sys.stderr)
        else:
            print(f"interrupted ({stop}): no output was written", file=sys.stderr)
        return stop.exit_code
    except KeyboardInterrupt:
        print("interrupted: no output was written", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
