"""The app's flag classes: every class that declares a flag in its config modules (`config`
re-exports them; each class is its own argument group, so the order between modules is free).
`gpt_flags.add_flag_groups(parser, FLAG_CONFIGS)` puts them on any parser."""

from gpt_flags import flag_classes

from . import inert_model_config, inert_service_config, loop_config

FLAG_CONFIGS: tuple[type, ...] = flag_classes(inert_model_config, loop_config, inert_service_config)
