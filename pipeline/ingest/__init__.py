"""Where frames come from: video files, RTSP cameras, thermal and day/night fronts, query images."""
