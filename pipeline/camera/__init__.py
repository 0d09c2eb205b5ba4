"""One camera's processing: detect → track → clip buffer → clips on the bus; camera status."""
