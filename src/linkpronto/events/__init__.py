"""Who is in the room: LiveKit webhooks in (:mod:`.webhook`), link presence (:mod:`.presence`), the
store side and durable outbox (:mod:`.outbox`) and the hub that ties them to the SSE stream and to
the app's callbacks (:mod:`.hub`)."""
