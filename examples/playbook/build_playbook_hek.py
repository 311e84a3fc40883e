"""Build the hand-written playbook into an E2/E3-only HEK: a diagnostic ceiling for written experience.

The five entries of ``playbook.jsonl`` were written by hand (by the hiexp authors), not distilled: they say
what a careful reader of HotpotQA would tell a small search agent. Evaluating them (``hiexp eval --hek
runs/playbook-hek``) measures what written advice can do for a policy at all; no default uses them.

    python examples/playbook/build_playbook_hek.py --out runs/playbook-hek
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hiexp.experience.hek import HEK
from hiexp.experience.schema import Entry
from hiexp.io import read_jsonl
from hiexp.search.embed import load_embedder

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="HEK directory to write (new, or an earlier HEK)")
    parser.add_argument("--embedder", default="default", help="embedder of the titles (default: the shipped MiniLM)")
    args = parser.parse_args()
    entries = [Entry.from_dict(record) for record in read_jsonl(HERE / "playbook.jsonl")]
    embedder = load_embedder(args.embedder)
    hek = HEK(entries, embedder.encode_passages([e.title for e in entries]))
    hek.manifest = {
        "description": "hand-written playbook of multi-hop search strategies (a diagnostic ceiling, not distilled)",
        "embedder": {"model_id": embedder.model_id, "dim": int(embedder.dim), "field": "title",
                     "query_prefix": getattr(embedder, "query_prefix", ""),
                     "passage_prefix": getattr(embedder, "passage_prefix", "")},
        "reflector": "hand-written",
        "summarizer": None,
        "sources": {"hand_written": str(HERE / "playbook.jsonl")},
        "warnings": [],
    }
    hek.save(args.out, overwrite=False)
    print(f"HEK {hek.version}: {hek.counts()} -> {args.out}")


if __name__ == "__main__":
    main()
