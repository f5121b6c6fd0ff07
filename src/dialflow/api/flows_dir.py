"""``--flows-dir DIR``: flows kept as files, loaded at start-up.

``DIR/<orgId>/<name>.yaml|.yml|.json`` are flow documents of organization ``orgId``
(which must exist): each is created, or stored as a new version when its content
changed. ``play`` nodes' ``file`` paths resolve under ``DIR`` too. A bad file is logged
with its problems and skipped; it never stops the server.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..flows.model import FlowError, parse_document
from ..flows.validate import validate_flow
from ..store.base import Store

log = logging.getLogger(__name__)

SUFFIXES = (".yaml", ".yml", ".json")


def _scan(root: Path) -> list[tuple[str, Path, bytes]]:
    """(org id, path, content) of every flow file, read off the event loop."""
    if not root.is_dir():
        log.warning("--flows-dir %s is not a directory", root)
        return []
    found = []
    for org_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(p for p in org_dir.iterdir() if p.suffix.lower() in SUFFIXES):
            found.append((org_dir.name, path, path.read_bytes()))
    return found


async def load_flows_dir(store: Store, root: Path) -> list[tuple[str, str, int]]:
    """Load every flow file; returns (org, flow id, version) for those created or updated."""
    loaded: list[tuple[str, str, int]] = []
    for org_id, path, content in await asyncio.to_thread(_scan, root):
        if await store.get_org(org_id) is None:
            log.warning("flows-dir: no organization %r for %s", org_id, path)
            continue
        try:
            document = parse_document(content, "json" if path.suffix == ".json" else "yaml")
        except FlowError as exc:
            log.warning("flows-dir: %s: %s", path, exc)
            continue
        result = validate_flow(document)
        if result.flow is None or result.errors:
            problems = "; ".join(f"{p.path}: {p.message}" for p in result.errors)
            log.warning("flows-dir: %s refused: %s", path, problems)
            continue
        doc = result.flow.to_document()
        current = await store.get_flow(org_id, result.flow.id)
        if current is None:
            stored = await store.create_flow(org_id, result.flow.id, doc)
        elif current.document != doc:
            updated = await store.add_flow_version(org_id, result.flow.id, doc)
            if updated is None:
                continue
            stored = updated
        else:
            continue
        loaded.append((org_id, stored.flow_id, stored.version))
        log.info("flows-dir: %s → %s/%s version %d", path, org_id, stored.flow_id, stored.version)
    return loaded
