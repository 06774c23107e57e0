"""This package's flag classes: every class that declares a flag in `config` and the modules
beside it (each class is its own argument group, so the order between modules is free). `gpt_flags.add_flag_groups(parser, FLAG_CONFIGS)` puts them on any parser."""

from gpt_flags import flag_classes

from . import config, layout_config, optim_config, precision_config, schedule_config

FLAG_CONFIGS: tuple[type, ...] = flag_classes(
    optim_config, config, schedule_config, precision_config, layout_config
)
