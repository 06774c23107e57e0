"""What the checks share: the namespace being resolved and the warnings said so far."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from ..errors import ArgsError


@dataclass
class Resolution:
    """A copy of the parsed arguments that the checks fill with derived values.

    The parsed namespace itself is never changed; the checks work on this copy, and the configs
    are built from it once, frozen.
    """

    args: argparse.Namespace
    world_size: int
    warnings: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)

    def say(self, text: str) -> None:
        self.messages.append(text)


def require(condition: bool, message: str) -> None:
    """Fail with one line when a condition on the arguments does not hold."""
    if not condition:
        raise ArgsError(message)
