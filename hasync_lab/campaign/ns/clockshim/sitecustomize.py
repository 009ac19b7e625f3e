"""The ns tier's wall-clock shim: what a daemon of the campaign sees of CLOCK_REALTIME.

CLOCK_REALTIME is not namespaced: stepping it inside a lab node (`date -s`) would step
the whole machine. So the campaign steps the daemons' view of it instead. Python loads
this module at start-up (``sitecustomize`` on PYTHONPATH) in the failover daemon and the
sync watcher the campaign starts; it does nothing unless HASYNC_CAMPAIGN_CLOCK names a
file. That file holds the steps, one per line: ``HOST_REALTIME OFFSET_S`` (from that
host time on, the process's wall clock is the host's plus OFFSET_S).

Shifted: time.time(), time.time_ns(), time.clock_gettime[_ns](CLOCK_REALTIME), and the
kernel's receive timestamps of datagrams (SO_TIMESTAMP[NS] from recvmsg), each by the
offset in force *when it was taken* -- a datagram that arrived before a step keeps the
old time, as on a real machine. Not shifted: the monotonic clocks (what a step does not
touch anyway), datetime's own reads of the clock, child processes (agents, unison) and
file times, which come from the host's clock.
"""

import os

_PATH = os.environ.get("HASYNC_CAMPAIGN_CLOCK")

if _PATH:
    import socket
    import struct
    import time

    _real_time, _real_time_ns = time.time, time.time_ns
    _real_cg, _real_cg_ns = time.clock_gettime, time.clock_gettime_ns
    _REALTIME = time.CLOCK_REALTIME
    _TS_KINDS = (29, 35)  # SO_TIMESTAMP, SO_TIMESTAMPNS (struct timeval / timespec: two longs)
    _state: dict = {"stamp": None, "steps": []}

    def _steps():
        try:
            st = os.stat(_PATH)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != _state["stamp"]:
            steps = []
            try:
                with open(_PATH) as f:
                    for line in f:
                        at, off = line.split()
                        steps.append((float(at), float(off)))
            except (OSError, ValueError):
                pass
            _state["stamp"], _state["steps"] = stamp, steps
        return _state["steps"]

    def _offset(host_t):
        off = 0.0
        for at, o in _steps():
            if at <= host_t:
                off = o
        return off

    def _time():
        t = _real_time()
        return t + _offset(t)

    def _time_ns():
        t = _real_time_ns()
        return t + int(_offset(t / 1e9) * 1e9)

    def _clock_gettime(clk):
        v = _real_cg(clk)
        return v + _offset(v) if clk == _REALTIME else v

    def _clock_gettime_ns(clk):
        v = _real_cg_ns(clk)
        return v + int(_offset(v / 1e9) * 1e9) if clk == _REALTIME else v

    time.time, time.time_ns = _time, _time_ns
    time.clock_gettime, time.clock_gettime_ns = _clock_gettime, _clock_gettime_ns

    _recvmsg = socket.socket.recvmsg

    def _shift(kind, cdata):
        sec, frac = struct.unpack_from("qq", cdata)
        scale = 1e-9 if kind == 35 else 1e-6
        t = sec + frac * scale + _offset(sec + frac * scale)
        s = int(t // 1)
        return struct.pack("qq", s, int(round((t - s) / scale))) + cdata[16:]

    def recvmsg(self, *args):
        data, anc, flags, addr = _recvmsg(self, *args)
        if anc and _steps():
            anc = [(lv, k, _shift(k, c) if lv == socket.SOL_SOCKET and k in _TS_KINDS and len(c) >= 16 else c)
                   for lv, k, c in anc]
        return data, anc, flags, addr

    socket.socket.recvmsg = recvmsg  # type: ignore[method-assign]
