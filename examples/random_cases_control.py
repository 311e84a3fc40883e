"""A control for curation: the same number of cases as a curated HEK kept, drawn at random from the HEK it
was curated from. Evaluating both on the same questions tells whether the screen's choice mattered or only
the size of the bank did (docs/results.md, "The curated arm").

    python examples/random_cases_control.py runs/cases-hek --keep 14 --seed 0 --out runs/random14-hek
    python examples/compare_on_test.py --out runs/test32 --arms curated,other-hek \\
        --curated-hek demo --other-hek runs/random14-hek
"""

from __future__ import annotations

import argparse
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("hek", help="the cases HEK to draw from (a directory or a shipped name)")
    parser.add_argument("--keep", type=int, required=True, help="cases to keep (e.g. as many as curation kept)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draw")
    parser.add_argument("--out", required=True, help="new HEK directory (refused if it exists and is not empty)")
    args = parser.parse_args()

    from hiexp.errors import HiexpError
    from hiexp.experience.curate import without
    from hiexp.experience.hek import HEK
    from hiexp.io import check_output_dir, exclusive_output

    try:
        out = check_output_dir(args.out, what="HEK directory", overwrite_option=None, inputs=[args.hek])
        hek = HEK.load(args.hek)
        ids = [entry.id for entry in hek.entries]
        if not 0 < args.keep <= len(ids):
            raise HiexpError(f"--keep must be between 1 and {len(ids)}, the HEK's entries (got {args.keep})")
        kept = set(random.Random(args.seed).sample(ids, args.keep))
        control = without(hek, [i for i in ids if i not in kept],
                          description=f"random control: {args.keep} of {len(ids)} entries of HEK {hek.version} "
                                      f"drawn at random (seed {args.seed}), no screen")
        control.manifest["curated_from"]["control"] = "random"
        with exclusive_output(out, "random_cases_control.py", inputs=[args.hek]):
            control.save(out)
    except HiexpError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"kept {args.keep} of {len(ids)}: {', '.join(sorted(kept))} -> {out}")


if __name__ == "__main__":
    main()
