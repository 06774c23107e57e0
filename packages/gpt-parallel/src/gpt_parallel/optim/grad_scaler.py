"""Loss scaling for fp16: a constant scale, or the original's dynamic scale with hysteresis.

The dynamic scaler starts at ``--initial-loss-scale`` (2^32). Each step whose gradients hold an
inf/NaN uses up one unit of hysteresis; when none is left the scale is multiplied by the backoff
factor (0.5, never below ``--min-loss-scale``). After ``--loss-scale-window`` (1000) clean steps
in a row the scale grows by the growth factor (2) and the hysteresis is refilled.
"""

from __future__ import annotations

from typing import Any

import torch

from gpt_parallel.device import pick_device


class GradScaler:
    """A loss scale kept as a one-element fp32 tensor on the compute device."""

    def __init__(self, initial_scale: float, device: torch.device | None = None) -> None:
        if initial_scale <= 0.0:
            raise ValueError(f"the loss scale must be positive, got {initial_scale}")
        self.device = device if device is not None else pick_device()
        self._scale = torch.tensor([initial_scale], dtype=torch.float, device=self.device)

    @property
    def scale(self) -> torch.Tensor:
        return self._scale

    @property
    def inv_scale(self) -> torch.Tensor:
        """1/scale computed in double, as the original does, then stored as fp32."""
        return self._scale.double().reciprocal().float()

    def update(self, found_inf: bool) -> None:
        """Adjust the scale after a step that did (or did not) find an inf/NaN gradient."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        raise NotImplementedError


class ConstantGradScaler(GradScaler):
    """``--loss-scale S``: the scale never changes."""

    def update(self, found_inf: bool) -> None:
        """A constant scale ignores overflows (the step is still skipped by the optimizer)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing is saved for a constant scale, so nothing is restored."""
        return None


class DynamicGradScaler(GradScaler):
    """The original's dynamic loss scale (see the module docstring)."""

    def __init__(
        self,
        initial_scale: float = 2.0**32,
        min_scale: float = 1.0,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 1000,
        hysteresis: int = 2,
        device: torch.device | None = None,
    ) -> None:
        super().__init__(initial_scale, device)
        if not 0.0 < min_scale <= initial_scale:
            raise ValueError(
                f"--min-loss-scale ({min_scale}) must be positive and <= --initial-loss-scale "
                f"({initial_scale})"
            )
        if growth_factor <= 1.0:
            raise ValueError(f"the loss-scale growth factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(
                f"the loss-scale backoff factor must be in (0, 1), got {backoff_factor}"
            )
        if growth_interval <= 0:
            raise ValueError(f"--loss-scale-window must be positive, got {growth_interval}")
        if hysteresis <= 0:
            raise ValueError(f"--hysteresis must be positive, got {hysteresis}")
        self.min_scale = torch.tensor([min_scale], dtype=torch.float, device=self.device)
        self.growth_factor = torch.tensor([growth_factor], dtype=torch.float, device=self.device)
        self.backoff_factor = torch.tensor([backoff_factor], dtype=torch.float, device=self.device)
        self.growth_interval = growth_interval
        self.hysteresis = hysteresis
        self._growth_tracker = 0
        self._hysteresis_tracker = hysteresis

    def update(self, found_inf: bool) -> None:
        if found_inf:
            self._growth_tracker = 0
            self._hysteresis_tracker -= 1
            if self._hysteresis_tracker <= 0:
                self._scale = torch.max(self._scale * self.backoff_factor, self.min_scale)
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self.growth_interval:
                self._growth_tracker = 0
                self._hysteresis_tracker = self.hysteresis
                self._scale = self._scale * self.growth_factor

    def state_dict(self) -> dict[str, Any]:
        """The original's keys: ``scale``, ``growth_tracker``, ``hysteresis_tracker``."""
        return {
            "scale": self._scale,
            "growth_tracker": self._growth_tracker,
            "hysteresis_tracker": self._hysteresis_tracker,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._scale = state_dict["scale"].to(self.device)
        self._growth_tracker = state_dict["growth_tracker"]
        self._hysteresis_tracker = state_dict["hysteresis_tracker"]
