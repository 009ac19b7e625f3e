"""A client's record stream for the failover tests: numbered, checksummed, fsync'd.

Usage: python3 nfs_writer.py DATAFILE ACKLOG STOPFILE [INTERVAL_S]
Appends records "SEQ PAYLOAD SHA\\n" to DATAFILE (on the NFS mount), fsync()s each one and
only then appends SEQ to ACKLOG (on the client's own disk, fsync'd too): ACKLOG lists
exactly the records the server acknowledged as stable. Errors (e.g. ESTALE) are logged to
stderr with a time stamp and retried; stops when STOPFILE exists.
"""

import hashlib
import os
import sys
import time

data, acklog, stop = sys.argv[1], sys.argv[2], sys.argv[3]
interval = float(sys.argv[4]) if len(sys.argv) > 4 else 0.05


def record(seq):
    body = f"{seq:08d} {'x' * 32}"
    return f"{body} {hashlib.sha256(body.encode()).hexdigest()[:16]}\n".encode()


ack = os.open(acklog, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
seq = 1
fd = None
while not os.path.exists(stop):
    try:
        if fd is None:
            fd = os.open(data, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, record(seq))
        os.fsync(fd)
    except OSError as e:
        print(f"{time.time():.3f} seq {seq}: {e}", file=sys.stderr, flush=True)
        if fd is not None:
            try:
                os.close(fd)
            except OSError:
                pass
            fd = None
        time.sleep(0.2)
        continue
    os.write(ack, f"{seq} {time.time():.3f}\n".encode())
    os.fsync(ack)
    seq += 1
    time.sleep(interval)
print(f"{time.time():.3f} stopped after {seq - 1} records", file=sys.stderr, flush=True)
