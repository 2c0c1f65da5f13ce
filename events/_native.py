"""Which build of the replay's hot-path modules runs: compiled (mypyc) or pure Python.

`make install` compiles the modules in COMPILED with mypyc (setup.py): the same source,
turned into C extensions beside it, which run about 15% fewer instructions per replayed
event (issue 15; `make bench` records which build ran). Python imports an extension
before the .py of the same name, so a compiled module that no longer matches its source
(edited, or checked out since the build) would run old code. `install` therefore loads
every module of these packages from its .py unless the build's manifest (the SHA-256 of
each source when mypyc read it) matches every source now and no extension lies there
that the build does not make (a module taken out of COMPILED); it says so on stderr
when either is found. PROJECTOR_PURE_PYTHON=1 asks for the pure-Python modules (the
tests replay with both builds and compare the targets).

This module imports nothing of the project's; setup.py reads COMPILED and GROUP from its
source (importing it would choose a build).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

#: The modules mypyc compiles: the per-event work of a replay (parse and validate,
#: handlers, row store, digest, history check). Orchestration (projector.replay,
#: the sources) stays Python: compiling it gains little, and tests patch it.
COMPILED = (
    "events.encoding",
    "events.envelope",
    "events.fastpath",
    "events.history",
    "events.validation",
    "projector.batch",
    "projector.checkpoint",
    "projector.handlers",
    "projector.store",
)
#: Extensions written in C, not compiled from a .py: {module: its C source under the
#: project root}. Built with COMPILED and run only with them (the manifest names their
#: sources too): events/_pages.c reads an eventlog's pages straight into events;
#: projector/_writer.c runs the writer process's batch parts from their MessagePack.
C_EXTENSIONS = {"events._pages": "events/_pages.c", "projector._writer": "projector/_writer.c"}
#: The shared library mypyc builds for them (events/_native__mypyc.*.so).
GROUP = "events._native"
#: Written beside the shared library by setup.py once every extension is built:
#: {"sources": {module: sha256 of its .py}}.
MANIFEST = "_native_build.json"
#: Set (to anything but "" or "0"): run the pure-Python modules.
PURE_ENV = "PROJECTOR_PURE_PYTHON"

ROOT = Path(__file__).resolve().parent.parent
#: The packages of COMPILED (GROUP's shared library lives in one of them).
_PACKAGES = frozenset(m.split(".")[0] for m in (*COMPILED, *C_EXTENSIONS, GROUP))
#: Every extension module the build makes but the mypyc group's library.
BUILT = (*COMPILED, *C_EXTENSIONS)

_state: str | None = None


def pure_asked() -> bool:
    """Whether PURE_ENV asks for the pure-Python modules."""
    return os.environ.get(PURE_ENV, "") not in ("", "0")


def source_path(module: str) -> Path:
    """The source of MODULE (one of BUILT: its .py, or its C file), under the project root."""
    if module in C_EXTENSIONS:
        return ROOT / C_EXTENSIONS[module]
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def source_digests(modules: Sequence[str] = BUILT) -> dict[str, str]:
    """{module: SHA-256 hex of its source file} for MODULES."""
    return {m: hashlib.sha256(source_path(m).read_bytes()).hexdigest() for m in modules}


def _built(directory: Path, name: str) -> bool:
    return any((directory / f"{name}{s}").is_file() for s in importlib.machinery.EXTENSION_SUFFIXES)


def extension_files(package: str) -> list[Path]:
    """The extension modules (any of this Python's suffixes) in PACKAGE's folder."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted(p for p in (ROOT / package).iterdir() if p.name.endswith(suffixes))


def _stray_extensions() -> list[Path]:
    """Extension files in the packages of COMPILED that the build does not make (left by
    a module taken out of COMPILED, or by an older build)."""
    made = {*BUILT, f"{GROUP}__mypyc"}
    return [
        path
        for package in sorted(_PACKAGES)
        for path in extension_files(package)
        if f"{package}.{path.name.split('.')[0]}" not in made
    ]


def _check() -> tuple[str, str | None]:
    """(state, warning): state is "compiled", "pure (asked)", "pure (not built)" or
    "pure (stale)"; the warning is for stderr (sources changed since the build, or an
    extension the build does not make)."""
    if pure_asked():
        return "pure (asked)", None
    manifest = ROOT / "events" / MANIFEST
    lib_dir = ROOT.joinpath(*GROUP.split(".")[:-1])
    modules_built = all(
        _built(source_path(m).parent, m.rsplit(".", 1)[1]) for m in BUILT
    ) and _built(lib_dir, GROUP.rsplit(".", 1)[1] + "__mypyc")
    stray = _stray_extensions()
    if stray:
        files = ", ".join(str(p.relative_to(ROOT)) for p in stray)
        return "pure (stale)", (
            f"projector: {files} left by an older build; running the pure-Python modules, "
            "which are slower; `make install` rebuilds them (`make clean` removes the build)"
        )
    if not modules_built:
        return "pure (not built)", None
    try:
        recorded: Any = json.loads(manifest.read_text())["sources"]
    except (OSError, ValueError, KeyError, TypeError):
        return "pure (not built)", None
    changed = [m for m, digest in source_digests().items() if recorded.get(m) != digest]
    if not changed:
        return "compiled", None
    files = ", ".join(str(source_path(m).relative_to(ROOT)) for m in changed)
    return "pure (stale)", (
        f"projector: the compiled modules are older than their sources ({files} changed "
        "since the build); running the pure-Python ones, which are slower; `make install` "
        "rebuilds them"
    )


class _SourceFinder:
    """A meta path finder that loads every module of the packages of COMPILED that has a
    .py file from it, whatever extension lies beside it (COMPILED's, or a stray one)."""

    @staticmethod
    def find_spec(
        name: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, dot, _ = name.partition(".")
        if not dot or package not in _PACKAGES or name in C_EXTENSIONS:
            return None
        source = source_path(name)
        if not source.is_file():
            return None
        return importlib.util.spec_from_file_location(name, source)


def install() -> str:
    """Choose the build once per process, before any module of COMPILED is imported
    (importing this module calls it; `events/__init__.py` imports it first), and return
    its state: "compiled", "pure (asked)", "pure (not built)" or "pure (stale)"."""
    global _state
    if _state is None:
        _state, warning = _check()
        if _state != "compiled":
            sys.meta_path.insert(0, _SourceFinder())
        if warning:
            print(warning, file=sys.stderr)
    return _state


def state() -> str:
    """The state `install` chose, and which build of COMPILED is loaded."""
    return install()


def extension(module: str) -> Any:
    """The C extension MODULE (one of C_EXTENSIONS) when the compiled build runs
    (`state`), else None: the pure-Python build runs without it, as it always did."""
    if module not in C_EXTENSIONS or install() != "compiled":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


__all__ = [
    "BUILT",
    "COMPILED",
    "C_EXTENSIONS",
    "GROUP",
    "MANIFEST",
    "PURE_ENV",
    "extension",
    "extension_files",
    "install",
    "pure_asked",
    "source_digests",
    "state",
]

install()
