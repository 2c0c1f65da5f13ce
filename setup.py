"""Compiles the replay's hot-path modules with mypyc, and its C extensions (issue 15); see
events/_native.py.

pyproject.toml holds the project's metadata; this file only adds the extensions. Every
extension is optional: where mypyc or a C compiler is missing, or a module fails to
compile, the install goes on and the pure-Python modules run (`events._native` checks the
manifest this build writes last). PROJECTOR_PURE_PYTHON=1 skips the compile.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import time
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
NATIVE = ROOT / "events" / "_native.py"


def _constant(name: str) -> object:
    """NAME's value in events/_native.py, read without importing it."""
    for node in ast.parse(NATIVE.read_text()).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise LookupError(f"{NATIVE}: no {name}")


COMPILED: tuple[str, ...] = tuple(_constant("COMPILED"))  # type: ignore[arg-type]
C_EXTENSIONS: dict[str, str] = dict(_constant("C_EXTENSIONS"))  # type: ignore[call-overload]
GROUP = str(_constant("GROUP"))
MANIFEST = str(_constant("MANIFEST"))


def _path(module: str) -> str:
    if module in C_EXTENSIONS:
        return C_EXTENSIONS[module]
    return str(Path(*module.split(".")).with_suffix(".py"))


def _extensions() -> list:
    """The extensions mypyc makes of COMPILED, each optional: a failed compile leaves the
    pure-Python module. Run only by build_ext (mypy's analysis takes seconds)."""
    from mypyc.build import mypycify

    extensions = mypycify(
        [_path(m) for m in COMPILED], opt_level="3", group_name=GROUP, multi_file=True
    )
    for extension in extensions:
        extension.optional = True
        # mypyc writes a dotted group's headers under its package (build/events/) but
        # includes them as if at build/ from the per-module C files.
        extension.include_dirs.append(str(Path("build", *GROUP.split(".")[:-1])))
    # The C extensions link the system's libsqlite3, the one the sqlite3 module links
    # (events/sqlite_source.py checks that at run time).
    for module, source in C_EXTENSIONS.items():
        extensions.append(Extension(module, sources=[source], libraries=["sqlite3"], optional=True))
    return extensions


def _sha256(module: str) -> str:
    return hashlib.sha256((ROOT / _path(module)).read_bytes()).hexdigest()


def _remove_extensions() -> None:
    """Every extension file in the packages of COMPILED: a module taken out of COMPILED,
    or one that fails to compile now, must not leave an older build of itself behind."""
    for package in sorted({m.split(".")[0] for m in (*COMPILED, *C_EXTENSIONS, GROUP)}):
        for old in (ROOT / package).iterdir():
            if old.name.endswith(tuple(EXTENSION_SUFFIXES)):
                old.unlink()


class BuildNative(build_ext):
    """Compiles COMPILED, then writes the manifest: only when every extension was built
    by this run, naming the SHA-256 each source had when mypyc read it."""

    def finalize_options(self) -> None:
        # Hashed before mypyc reads them: a source edited while the build runs does not
        # match the manifest, so its stale extension is never run.
        self.sources = {m: _sha256(m) for m in (*COMPILED, *C_EXTENSIONS)}
        self.started = time.time()
        # Before finalizing (which prepares each extension), not in run: an editable
        # install copies back the outputs of the extensions known before run.
        if os.environ.get(str(_constant("PURE_ENV")), "") not in ("", "0"):
            print("PROJECTOR_PURE_PYTHON is set: nothing compiled, the pure-Python modules run")
            self.distribution.ext_modules = []
        else:
            try:
                self.distribution.ext_modules = _extensions()
            except ImportError:
                print("mypyc is not installed: the pure-Python modules will run")
                self.distribution.ext_modules = []
        super().finalize_options()
        self.force = True  # rebuild every extension, even one whose C file is unchanged

    def run(self) -> None:
        manifest = Path(self.get_ext_fullpath(f"{GROUP}__mypyc")).parent / MANIFEST
        manifest.unlink(missing_ok=True)
        if self.inplace:
            _remove_extensions()
        super().run()
        if not self.extensions:
            return
        outputs = [Path(self.get_ext_fullpath(e.name)) for e in self.extensions]
        if not all(o.is_file() and o.stat().st_mtime >= self.started - 1 for o in outputs):
            print("some modules did not compile: the pure-Python modules will run")
            return
        manifest.write_text(json.dumps({"sources": self.sources}, indent=1) + "\n")


#: A placeholder: build_ext runs only for a project with extensions; BuildNative
#: replaces it with mypyc's.
_PLACEHOLDER = Extension(f"{GROUP}__mypyc", sources=[])

setup(ext_modules=[_PLACEHOLDER], cmdclass={"build_ext": BuildNative})
