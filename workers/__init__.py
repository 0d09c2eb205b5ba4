"""Process entry points: parse config, wire ``pipeline`` pieces to a bus, run the loop."""
