"""The streaming library: messages, sources, detection, tracking, clips, bus, matcher, store, API."""
