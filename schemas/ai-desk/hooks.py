"""ai-desk's Python hooks: what catalog.toml cannot declare.

v1.PersonaCreated (avatar optional, no voice) is upcast to v2.PersonaCreated, so one
declared insert applies both; LiveStore's v1 materializer wrote NULL for both columns.
"""

from projector.catalog import Hooks

hooks = Hooks()


@hooks.upcaster("v1.PersonaCreated", "v2.PersonaCreated")
def upcast_persona_created_v1_v2(args):
    return {
        "id": args["id"],
        "name": args["name"],
        "personality": args["personality"],
        "avatar": args.get("avatar"),
        "voice": None,
        "createdAt": args["createdAt"],
    }
