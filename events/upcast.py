"""Upcasting: old event versions raised to the current shape by small chained steps.

Each step is registered for the name it reads and names the one it writes; a name has
at most one step. `upcast` follows the chain, so each entity has one handler shape.
Each version's own schema has validated the args before they get here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Args = dict[str, Any]
Step = Callable[[Args], Args]

UPCASTERS: dict[str, tuple[str, Step]] = {}


def upcaster(from_name: str, to_name: str) -> Callable[[Step], Step]:
    """Register STEP as the upcast from FROM_NAME to TO_NAME; a second one is an error."""

    def register(step: Step) -> Step:
        if from_name in UPCASTERS:
            raise ValueError(f"an upcaster from {from_name} is already registered")
        UPCASTERS[from_name] = (to_name, step)
        return step

    return register


def upcast(name: str, args: Args) -> tuple[str, Args]:
    """Follow the upcast chain from NAME to the current version."""
    seen = {name}
    while name in UPCASTERS:
        name, step = UPCASTERS[name]
        if name in seen:
            raise ValueError(f"upcast cycle through {name}")
        seen.add(name)
        args = step(args)
    return name, args


@upcaster("v1.PersonaCreated", "v2.PersonaCreated")
def upcast_persona_created_v1_v2(args: Args) -> Args:
    """v1 had an optional avatar and no voice; LiveStore's v1 materializer wrote NULL for both."""
    return {
        "id": args["id"],
        "name": args["name"],
        "personality": args["personality"],
        "avatar": args.get("avatar"),
        "voice": None,
        "createdAt": args["createdAt"],
    }
