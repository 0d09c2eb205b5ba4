"""The re-ID stage: clips → batches → X-ReID encoder → embeddings on the bus."""
