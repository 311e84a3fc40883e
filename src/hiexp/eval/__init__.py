"""Evaluation of a method on datasets (`hiexp eval`) and paired comparison of runs; the scores themselves are in `hiexp.scoring`."""
