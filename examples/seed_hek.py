"""Write a small hand-written HEK: a stand-in for a teacher-distilled one when no strong reflector is at hand.

The paper distils its HEK with the policy or a stronger teacher. On a CPU machine the only offline reflector
is the 0.5B policy itself, whose self-distilled entries are mostly question-specific (see the demo report).
This script writes general multi-hop search advice in the same three-level format, with the same embedder,
so that experience-aligned RL can be compared with vanilla RL while the HEK carries usable advice.

    python examples/seed_hek.py runs/seed-hek
    hiexp show runs/seed-hek
"""

from __future__ import annotations

import sys

from hiexp.experience.hek import HEK
from hiexp.experience.schema import Entry
from hiexp.search.embed import load_embedder

SEED = {"author": "hand-written seed (examples/seed_hek.py)"}

E1 = [
    ("Search each entity of a two-part question separately",
     "When the question links two people, films or places, search the first one, read which second entity "
     "the passage names, then search that one."),
    ("Query with the exact name, not the whole question",
     "Short queries made of the full proper name (and a disambiguating word) retrieve better passages than "
     "the question copied verbatim."),
    ("Answer with the shortest span the passage gives",
     "Give only the name, date or number that answers the question, copied from a passage, inside the "
     "answer tags."),
    ("Comparison questions need both facts",
     "For 'which is older / larger / first', find the value for each side before answering; do not guess "
     "from one passage."),
    ("Yes/no questions answer yes or no",
     "When the question asks whether two things share a property, check both and answer just yes or no."),
    ("Stop searching once a passage states the answer",
     "If the retrieved passage already contains the fact asked for, answer instead of searching again."),
    ("Birthplace and nationality questions",
     "For where someone was born or which country they are from, search the person's full name plus 'born'."),
    ("Film and album questions",
     "Search the exact title with the word 'film' or 'album' to separate it from people of the same name."),
]
E2 = [
    ("Decompose multi-hop questions into entity searches",
     "Find the bridge entity first, then search it; compare both sides before answering.", [0, 1, 3, 6, 7]),
    ("Answer briefly once the evidence is there",
     "Stop when a passage states the fact and answer with the short span (or yes/no).", [2, 4, 5]),
]
E3 = ("Search precisely, answer from evidence",
      "Use exact-name queries per hop and answer with a short span supported by a passage.")


def seed_entries() -> list[Entry]:
    e1 = [Entry(id=f"seed-e1-{i}", level="E1", title=t, description=d, sources=dict(SEED))
          for i, (t, d) in enumerate(E1)]
    e2 = [Entry(id=f"seed-e2-{j}", level="E2", title=t, description=d, sources=dict(SEED),
                children=[e1[i].id for i in kids]) for j, (t, d, kids) in enumerate(E2)]
    e3 = [Entry(id="seed-e3-0", level="E3", title=E3[0], description=E3[1], sources=dict(SEED),
                children=[e.id for e in e2])]
    return e1 + e2 + e3


def main(directory: str) -> None:
    entries = seed_entries()
    embedder = load_embedder("default")
    hek = HEK(entries, embedder.encode_passages([e.title for e in entries]))
    # the same manifest record as `hiexp build`, so lookups load and check the same embedder
    hek.save(directory, embedder={"model_id": embedder.model_id, "dim": int(embedder.dim), "field": "title"})
    saved = HEK.load(directory)
    print(f"wrote {directory}: version {saved.version}, {saved.counts()}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/seed-hek")
