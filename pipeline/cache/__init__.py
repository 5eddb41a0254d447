"""Answers already paid for: the on-disk store (bytes only, never pickles), its private
files, and the memo that looks up, shares in-flight answers and stores."""
