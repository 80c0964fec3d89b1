#!/usr/bin/env python3
"""Tidies a fuzz corpus folder (scripts/fuzz-campaign.sh runs it after each minimisation): drops
files identical to a shared fixture (the seeds frame those already), optionally cuts each input
to its first CUT bytes, and names every file by the SHA-1 of its content, which drops the
duplicates a cut makes.

    fuzz-corpus-tidy.py CORPUS FIXTURES [CUT]"""
import hashlib
import os
import sys

corpus, fixtures = sys.argv[1:3]
cut = int(sys.argv[3]) if len(sys.argv) > 3 else None
fixture_hashes = set()
for dirpath, _, names in os.walk(fixtures):
    for n in names:
        with open(os.path.join(dirpath, n), "rb") as f:
            fixture_hashes.add(hashlib.sha1(f.read()).hexdigest())
for n in os.listdir(corpus):
    path = os.path.join(corpus, n)
    with open(path, "rb") as f:
        data = f.read()
    os.remove(path)
    if hashlib.sha1(data).hexdigest() in fixture_hashes:
        continue
    if cut is not None:
        data = data[:cut]
    with open(os.path.join(corpus, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)
