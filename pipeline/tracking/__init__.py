"""Per-camera multi-object tracking, fragment relinking and MOTChallenge files."""
