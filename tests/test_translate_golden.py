"""Golden files: world documents in golden/translate/in → Envoy resources in out/.

Rewrite the outputs after a deliberate change with
``python3 -m pytest tests/test_translate_golden.py --update-goldens`` and
review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from xds_server.model.world_document import world_from_document
from xds_server.translate import translate
from xds_server.translate.resource_document import resources_to_document

GOLDEN = Path(__file__).parent / "golden" / "translate"
INPUTS = sorted((GOLDEN / "in").glob("*.yaml"))


@pytest.mark.parametrize("source", INPUTS, ids=[p.stem for p in INPUTS])
def test_translation_matches_golden(source: Path, update_goldens: bool) -> None:
    """Translating the input gives exactly the expected resources."""
    world = world_from_document(yaml.safe_load(source.read_text()))
    produced = resources_to_document(translate(world))
    expected_path = GOLDEN / "out" / source.name
    if update_goldens:
        # json_format gives OrderedDicts for packed Any fields, which safe_dump refuses.
        plain = json.loads(json.dumps(produced))
        expected_path.write_text(yaml.safe_dump(plain, sort_keys=False))
    assert expected_path.exists(), "no golden output: run with --update-goldens"
    assert produced == yaml.safe_load(expected_path.read_text())


def test_no_orphan_outputs(update_goldens: bool) -> None:
    """Every output has an input (orphans are deleted by --update-goldens)."""
    inputs = {p.name for p in INPUTS}
    orphans = [p for p in (GOLDEN / "out").glob("*.yaml") if p.name not in inputs]
    if update_goldens:
        for orphan in orphans:
            orphan.unlink()
        orphans = []
    assert orphans == []
