"""HTTP faces: the admin listener (dashboard + API, 127.0.0.1 only) and the public listener."""
