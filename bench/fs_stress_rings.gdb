# gdb -p <smolvm-virtiofsd serving child> -batch -x bench/fs_stress_rings.gdb
# Prints each vhost-user-fs queue's back-end state and the guest's side of its
# ring (read through the back-end's mapping of guest RAM). bench/fs_stress.sh.
python
import gdb

def u16(addr):
    return int(gdb.parse_and_eval("*(unsigned short *)%d" % addr))

vfs = None
for th in gdb.selected_inferior().threads():
    th.switch()
    f = gdb.newest_frame()
    while f is not None and vfs is None:
        try:
            if f.name() in ("worker_main", "process_queue"):
                vfs = f.read_var("vfs")
        except Exception:
            pass
        f = f.older()
    if vfs is not None:
        break
if vfs is None:
    print("no worker thread (no queue running?)")
else:
    dev = vfs["dev"].cast(gdb.lookup_type("struct smolvm_vu_dev").pointer())
    nq = int(vfs["n_queues"])
    print("n_requests %d n_notifies %d n_dropped %d n_broken_queues %d" % (
        int(vfs["n_requests"]), int(vfs["n_notifies"]), int(vfs["n_dropped"]), int(vfs["n_broken_queues"])))
    print("acked_features 0x%x broken %s" % (int(dev["acked_features"]), dev["broken"]))
    for q in range(nq):
        vq = dev["queues"][q]
        ring = vq["vq"]
        print("queue %d: num %d running %s enabled %s started %s kick_fd %d call_fd %d base %d" % (
            q, int(vq["num"]), vq["running"], vq["enabled"], vq["started"], int(vq["kick_fd"]),
            int(vq["call_fd"]), int(vq["base"])))
        print("  device: last_avail_idx %d used_idx %d signalled_used %d valid %s broken %s event_idx %s" % (
            int(ring["last_avail_idx"]), int(ring["used_idx"]), int(ring["signalled_used"]),
            ring["signalled_used_valid"], ring["broken"], ring["event_idx"]))
        if int(ring["avail"]) == 0 or not vq["running"]:
            continue
        num = int(ring["num"])
        avail, used = int(ring["avail"]), int(ring["used"])
        print("  guest:  avail.flags 0x%x avail.idx %d used_event %d | used.flags 0x%x used.idx %d avail_event %d" % (
            u16(avail), u16(avail + 2), u16(avail + 4 + 2 * num), u16(used), u16(used + 2),
            u16(used + 4 + 8 * num)))
end
