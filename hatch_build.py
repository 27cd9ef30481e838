"""Build hook: an editable install of eventcore maps its source folders to their import names.

The wheel installs one import package, ``eventcore``: ``src/eventcore`` (the pure core) is
``eventcore``, and the ``force-include`` table of ``pyproject.toml`` places ``src/adapters`` at
``eventcore.adapters`` and ``src/entrypoints`` at ``eventcore.entrypoints``. A path file cannot
express that renaming for an editable install, so this hook gives the editable wheel a small
import finder that resolves exactly those three names to the folders (and nothing else: ``import
adapters`` fails in development as it does once installed).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

FINDER_MODULE = "_eventcore_editable"

_FINDER = '''"""eventcore in editable mode: its import names resolved to the source folders."""

import importlib.util
import sys
from importlib.abc import MetaPathFinder

FOLDERS = {folders!r}


class EditableFinder(MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        folder = FOLDERS.get(fullname)
        if folder is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, folder + "/__init__.py", submodule_search_locations=[folder]
        )


if not any(type(finder).__name__ == "EditableFinder" for finder in sys.meta_path):
    sys.meta_path.insert(0, EditableFinder())
'''


class EditableNamespaceHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version != "editable":
            return
        root = Path(self.root)
        folders = {
            Path(package).name: str(root / package) for package in self.build_config.packages
        }
        for source, target in self.build_config.get_force_include().items():
            folders[target.replace("/", ".")] = str(Path(source))
        staging = Path(tempfile.mkdtemp(prefix="eventcore-editable-"))
        finder = staging / f"{FINDER_MODULE}.py"
        finder.write_text(_FINDER.format(folders=dict(sorted(folders.items()))))
        path_file = staging / f"{FINDER_MODULE}.pth"
        path_file.write_text(f"import {FINDER_MODULE}{os.linesep}")
        # Replaces the force-include table for this build: the folders are not copied.
        build_data["force_include_editable"] = {
            str(finder): finder.name,
            str(path_file): path_file.name,
        }
