"""This package's flag classes, in the original's group order: every class in `config` that
declares a flag. `gpt_flags.add_flag_groups(parser, FLAG_CONFIGS)` puts them on any parser."""

from gpt_flags import flag_classes

from . import config, layer_options_config

FLAG_CONFIGS: tuple[type, ...] = flag_classes(config, layer_options_config)
