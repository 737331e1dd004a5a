"""The adaptation corpus: ConceptNet triples -> sentences (verbalize); clean, dedup, cap, split (cap)."""
