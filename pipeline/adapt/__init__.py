"""Site adaptation: fine-tune the re-ID model on a deployment's own unlabelled tracks (``xreid adapt``)."""
