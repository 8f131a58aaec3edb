"""Media workers as processes: rooms placed on a worker, signaling bridged to it over NATS.

    registry.py   WorkerRegistry: every media process's heartbeat (its load) in the KV bucket
                  MEDIA_WORKERS, and the live workers as seen from here
    placement.py  RoomPlacement: room name → worker in the KV bucket MEDIA_ROOMS (first connect
                  places the room on the least loaded live worker; its last session releases it)
    bridge.py     a WebSocket connection carried over NATS to the worker that holds the room
    front.py      SignalingFront: the `/signaling` handler of a media process; serves a session
                  here when the room is placed here, else bridges it to the room's worker

Every `openrooms serve` with role `media` or `all` is both a front and a worker. With one such
process every room is placed on it and nothing crosses NATS.
"""
