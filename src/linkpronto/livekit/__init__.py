"""LiveKit: access tokens, RoomService calls and the media-server component (local, external, cloud)."""
