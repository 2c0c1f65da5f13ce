"""Upcasting: old event versions raised to the current shape by small chained steps.

A catalog's `Upcasters` holds its steps (registered by decorator in the catalog's
``hooks.py``): each is registered for the name it reads and names the one it writes; a
name has at most one step, and a second registration is an error. `Upcasters.upcast`
follows the chain, so each entity has one handler shape. Each version's own schema has
validated the args before they get here (eventsourcing's ``upcast_v1_v2`` convention).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Args = dict[str, Any]
Step = Callable[[Args], Args]


class Upcasters:
    """One catalog's upcast steps, keyed by the event name each step reads."""

    def __init__(self) -> None:
        self.steps: dict[str, tuple[str, Step]] = {}

    def register(self, from_name: str, to_name: str) -> Callable[[Step], Step]:
        """Register the decorated STEP as the upcast from FROM_NAME to TO_NAME.

        Raises ValueError when FROM_NAME already has a step.
        """

        def register(step: Step) -> Step:
            if from_name in self.steps:
                raise ValueError(f"an upcaster from {from_name} is already registered")
            self.steps[from_name] = (to_name, step)
            return step

        return register

    def current_name(self, name: str) -> str:
        """The name NAME is upcast to (NAME itself when it has no step).

        Raises ValueError on a cycle.
        """
        seen = {name}
        while name in self.steps:
            name = self.steps[name][0]
            if name in seen:
                raise ValueError(f"upcast cycle through {name}")
            seen.add(name)
        return name

    def upcast(self, name: str, args: Args) -> tuple[str, Args]:
        """Follow the upcast chain from NAME to the current version: (name, args)."""
        seen = {name}
        while name in self.steps:
            name, step = self.steps[name]
            if name in seen:
                raise ValueError(f"upcast cycle through {name}")
            seen.add(name)
            args = step(args)
        return name, args


__all__ = ["Args", "Step", "Upcasters"]
