"""The example scripts the docs point to still run and write what they promise."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

from hiexp.experience.hek import HEK
from hiexp.experience.retrieve import load_experience_hook

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_seed_hek_writes_a_loadable_three_level_hek(tmp_path):
    out = tmp_path / "seed-hek"
    done = subprocess.run([sys.executable, str(EXAMPLES / "seed_hek.py"), str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]

    hek = HEK.load(out)
    assert hek.counts() == {"E1": 8, "E2": 2, "E3": 1}
    ids = {e.id for e in hek.entries}
    for entry in hek.entries:
        assert entry.sources["author"].startswith("hand-written")
        assert set(entry.children) <= ids

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the manifest names the embedder the lookups load: no mismatch warning
        hook = load_experience_hook(out)
    [start] = hook.for_questions(["Where was the director of the film Jazz born?"])
    assert "Search precisely" in start.text or "Decompose" in start.text
    assert hook.version == hek.version
