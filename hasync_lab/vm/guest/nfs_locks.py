"""NFS locks held across a failover, and a second client's attempt to take them (VM lab).

Usage:
  python3 nfs_locks.py hold DIR TAG STATUS STOP
      Takes, on files of its own under DIR (the NFS mount), a `flock` on TAG.flock (the
      Linux NFS client sends it as a whole-file lock: NLM on v3, a v4 LOCK on v4.x) and an
      `fcntl` write lock on bytes 0-99 of TAG.fcntl, both without waiting, and holds them.
      Every second it writes one byte through each locked descriptor and fsyncs it: on v4
      a lock the client could not reclaim makes that I/O fail (EIO). STATUS (a file on
      the client's own disk, replaced atomically) is JSON: {"locked": t, "last_ok": t,
      "errors": [...]}. Stops (the locks go with the process) when STOP exists.
  python3 nfs_locks.py try DIR TAG
      The other side: try, without waiting, the same flock on TAG.flock and an fcntl
      lock on bytes 50-149 of TAG.fcntl (overlapping the held range), and as a control
      bytes 200-299 (nobody holds them: refusing those would mean the attempt itself is
      broken). Prints JSON {"flock": r, "fcntl": r, "control": r}, r one of "refused",
      "granted", "error: ..."; whatever was granted is released at once. While the server
      is in its grace period the kernel retries the request itself, so this can wait:
      the caller bounds it.
"""

import errno
import fcntl
import json
import os
import sys
import time

HELD = (0, 100)  # start, length of the held fcntl range
OVERLAP = (50, 100)
CONTROL = (200, 100)


def _status(path, st):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st, f)
    os.replace(tmp, path)


def hold(d, tag, status, stop):
    fl = os.open(os.path.join(d, tag + ".flock"), os.O_RDWR | os.O_CREAT, 0o666)
    fc = os.open(os.path.join(d, tag + ".fcntl"), os.O_RDWR | os.O_CREAT, 0o666)
    fcntl.flock(fl, fcntl.LOCK_EX | fcntl.LOCK_NB)
    fcntl.lockf(fc, fcntl.LOCK_EX | fcntl.LOCK_NB, HELD[1], HELD[0])
    st = {"locked": time.time(), "last_ok": time.time(), "errors": []}
    _status(status, st)
    while not os.path.exists(stop):
        ok = True
        for name, fd in (("flock", fl), ("fcntl", fc)):
            try:
                os.pwrite(fd, b"x", 0)
                os.fsync(fd)
            except OSError as e:
                ok = False
                st["errors"].append(f"{time.time():.3f} {name}: {e}")
                st["errors"] = st["errors"][-20:]
        if ok:
            st["last_ok"] = time.time()
        _status(status, st)
        time.sleep(1.0)


def _attempt(path, how):
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        return f"error: open: {e}"
    try:
        if how == "flock":
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            start, length = how
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, length, start)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return "refused"
        return f"error: {e}"
    finally:
        os.close(fd)  # releases whatever it got (flock and this process's fcntl locks on the file)
    return "granted"


def attempt(d, tag):
    out = {
        "flock": _attempt(os.path.join(d, tag + ".flock"), "flock"),
        "fcntl": _attempt(os.path.join(d, tag + ".fcntl"), OVERLAP),
        "control": _attempt(os.path.join(d, tag + ".fcntl"), CONTROL),
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["hold"] and len(sys.argv) == 6:
        hold(*sys.argv[2:])
    elif sys.argv[1:2] == ["try"] and len(sys.argv) == 4:
        attempt(*sys.argv[2:])
    else:
        sys.exit(__doc__)
