"""The features catalog's Python: an upcaster and a handler that writes, then may refuse."""

from projector.catalog import Hooks, IntegrityBreak

hooks = Hooks()


@hooks.upcaster("v0.ItemAdded", "v1.ItemAdded")
def upcast_item_added_v0_v1(args):
    return {"id": args["id"], "name": args["title"], "qty": 1, "labels": []}


@hooks.handler("v1.ItemRenamed", tables=("items",), key="id")
def item_renamed(rows, args):
    row = rows.get("items", args["id"])
    if row is None:
        raise IntegrityBreak(f"item {args['id']!r} does not exist")
    rows.put("items", args["id"], {**row, "name": args["name"]})
    if not args["name"].strip():  # written first, refused after: the write must be undone
        raise IntegrityBreak("an item's name cannot be blank")
