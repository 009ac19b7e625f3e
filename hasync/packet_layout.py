"""The heartbeat packet's layout and bounds: the one home of its sizes (pure, no imports
above the standard library).

Three layers need them: the codec (``hasync.failover.packets``, which says what each field
means), the config check (``hasync.config.limits``: a config whose names would not fit is
refused before the daemon starts) and the key file reader (``hasync.effects.keyfile``: the
shortest key). The config sits below the areas and the effects below the config, so the
sizes sit below them all (the bottom layer of the import-linter contract ``layers``).
"""

from __future__ import annotations

import struct

MAGIC = b"\xa5HS"
VERSION = 2  # the format a node sends; version 1 (before the echo) is still decoded
MAC_LEN = 32  # HMAC-SHA256
MAX_PAYLOAD = 1024  # bytes between the header and the MAC
HEADER = struct.Struct(">3sH")  # magic, payload length
# version, role, flags, generation, seq, epoch, request, request_id, ack_id
FIXED_V1 = struct.Struct(">BBHQQIBII")
FIXED = struct.Struct(">BBHQQIBIIQQ")  # version 2: + echo, digest (49 bytes)
# version 3 (several resource groups): version 2's fields, then one record per group:
# index, role, flags, epoch, request, request_id, ack_id (17 bytes), n_owned u8, owned str8 * n
VERSION_GROUPS = 3
GROUP_RECORD = struct.Struct(">BBHIBII")
GROUPS_MAX = 255  # n_groups is a u8
MIN_FIXED = FIXED_V1.size  # the shortest payload any version can have
STR8_MAX = 255  # a str8 field: u8 length + at most 255 bytes of UTF-8
OWNED_MAX = 255  # n_owned is a u8
MIN_KEY = 16  # bytes: the shortest HMAC key the daemon accepts (hasync.effects.keyfile)
GOOD_KEY = 32  # bytes: what check asks for (corosync-keygen writes 256)
