"""Stage 2, the store: chunked, memory-mapped, row-major float32 feature shards, side columns
and a checksummed manifest (docs/store.md), read by index without loading it; the derived caches
kept inside it are registered and verified by jsmp.store.caches."""
