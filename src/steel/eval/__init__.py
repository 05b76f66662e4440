"""Evaluation: C-Eval/CMMLU multiple choice (`mc`), perplexity (`ppl`), benchmark contamination."""
