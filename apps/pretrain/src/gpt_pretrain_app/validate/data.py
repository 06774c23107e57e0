"""Where the data comes from: exactly one source, and the split of a single blend."""

from __future__ import annotations

from .context import Resolution, require


def resolve_data_sources(r: Resolution) -> None:
    a = r.args
    per_split = any(p is not None for p in (a.train_data_path, a.valid_data_path, a.test_data_path))
    require(
        not (a.data_path is not None and a.data_args_path is not None),
        "--data-path and --data-args-path are mutually exclusive",
    )
    require(
        not (per_split and a.per_split_data_args_path is not None),
        "--train/valid/test-data-path and --per-split-data-args-path are mutually exclusive",
    )
    sources = [
        name
        for name, given in (
            ("--mock-data", a.mock_data),
            ("--data-path", a.data_path is not None or a.data_args_path is not None),
            ("--train/valid/test-data-path", per_split or a.per_split_data_args_path is not None),
        )
        if given
    ]
    require(
        len(sources) <= 1, f"{' and '.join(sources)} are mutually exclusive: give one data source"
    )
    if (a.data_path is not None or a.data_args_path is not None) and a.split is None:
        a.split = "969, 30, 1"
        r.warn("warning: --split not given, using the default '969, 30, 1'")
    if a.split is not None and per_split:
        require(False, "--split applies to --data-path, not to --train/valid/test-data-path")
    if a.dataloader_type is None:
        a.dataloader_type = "single"
    require(a.num_workers >= 0, f"--num-workers must not be negative, got {a.num_workers}")
    if a.data_path is not None and len(a.data_path) > 1 and len(a.data_path) % 2 == 0:
        first = a.data_path[0]
        try:
            float(first)
        except ValueError:
            pass
        else:
            for weight in a.data_path[0::2]:
                try:
                    value = float(weight)
                except ValueError:
                    value = None
                require(
                    value is not None,
                    f"--data-path: expected a weight before each prefix, got {weight!r}",
                )
                require(value >= 0, f"--data-path: weight {weight} must not be negative")
