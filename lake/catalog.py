"""catalog.yaml: the human-readable registry of a lake.

It names the lake root, the storage options (``${ENV}`` references keep secrets
out of the file) and, for each table, its kind, keys, partitioning and a
one-line description. A lake root always holds its own ``catalog.yaml``; a
catalog file elsewhere (like the repository's, for the embedded default lake)
points at a root relative to itself or by URL.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from biolake.lake.errors import LakeError
from biolake.lake.schema import TABLES
from biolake.lake.storage import Location, is_remote

CATALOG_FILE = "catalog.yaml"
_HEADER = "# biolake catalog: the lake root, how to reach it, and what each table holds.\n"


@dataclass
class Catalog:
    """The lake's location and its table entries (name → kind, keys, partition_by, description)."""

    location: Location
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    raw_storage_options: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def fresh(cls, location: Location, raw_storage_options: dict[str, Any] | None = None) -> "Catalog":
        """A catalog declaring every standard table."""
        entries = {name: spec.to_catalog_entry() for name, spec in TABLES.items()}
        return cls(location, entries, dict(raw_storage_options or {}))

    @classmethod
    def load(cls, where: str | os.PathLike, *, storage_options: dict[str, Any] | None = None) -> "Catalog":
        """Read a catalog from a catalog.yaml path, or from the root of a lake."""
        text = str(where)
        if text.endswith((".yaml", ".yml")):
            catalog_url, base = text, Location.parse(text).root.rsplit("/", 1)[0]
        else:
            root = Location.parse(text, storage_options)
            catalog_url, base = root.join(CATALOG_FILE), root.root
        fs = Location.parse(base, storage_options).filesystem()
        try:
            with fs.open(catalog_url if is_remote(catalog_url) else str(Path(catalog_url).resolve())) as handle:
                document = yaml.safe_load(handle) or {}
        except FileNotFoundError:
            raise LakeError(_no_catalog(catalog_url, where)) from None
        except yaml.YAMLError as exc:
            raise LakeError(f"{catalog_url}: not valid YAML ({exc})") from None
        return cls._from_document(document, base=base, source=catalog_url,
                                  storage_options=storage_options)

    @classmethod
    def _from_document(cls, document: dict, *, base: str, source: str,
                       storage_options: dict[str, Any] | None) -> "Catalog":
        lake_section = document.get("lake")
        if not isinstance(lake_section, dict) or "root" not in lake_section:
            raise LakeError(f"{source}: expected a 'lake:' section with a 'root:' entry")
        root = _resolve_root(str(lake_section["root"]), base)
        raw = dict(lake_section.get("storage_options") or {})
        options = {**raw, **(storage_options or {})}
        tables = document.get("tables") or {}
        if not isinstance(tables, dict):
            raise LakeError(f"{source}: 'tables:' must map table names to entries")
        return cls(Location.parse(root, options), dict(tables), raw)

    def to_yaml(self, *, root: str | None = None) -> str:
        """The catalog as YAML; storage options are written as given (``${ENV}`` unexpanded)."""
        document = {"lake": {"root": root if root is not None else self.location.root,
                             "storage_options": self.raw_storage_options},
                    "tables": self.tables}
        return _HEADER + yaml.safe_dump(document, sort_keys=False, width=100)

    def save(self) -> None:
        """Write ``catalog.yaml`` into the lake root (root written as '.', the lake is relocatable)."""
        fs = self.location.filesystem()
        fs.makedirs(self.location.root, exist_ok=True)
        with fs.open(self.location.join(CATALOG_FILE), "w") as handle:
            handle.write(self.to_yaml(root="."))


def _no_catalog(catalog_url: str, where: str | os.PathLike) -> str:
    """What to do when ``where`` holds no catalog: a missing catalog file is not a lake to create."""
    if str(where).endswith((".yaml", ".yml")):
        return (f"{catalog_url}: no such catalog; name a lake's root or its catalog.yaml, "
                "or create a lake with 'biolake init ROOT'")
    return f"{catalog_url}: no lake here (no catalog); create one with 'biolake init {where}'"


def _resolve_root(root: str, base: str) -> str:
    """A root given relative to the catalog file's folder, made absolute."""
    if is_remote(root) or os.path.isabs(root):
        return root
    if root.strip("/") in ("", "."):
        return base
    return f"{base}/{root}" if is_remote(base) else os.path.join(base, root)
