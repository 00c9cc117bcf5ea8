import os, time, resource, sys
def bench(mode, n=2000):
    path = f"/tmp/fsb-{mode}"
    if os.path.exists(path): os.remove(path)
    fd = os.open(path, os.O_RDWR|os.O_CREAT, 0o644)
    if mode in ("overwrite",):
        os.write(fd, b"\0"*(n*256)); os.fsync(fd); os.lseek(fd,0,0)
    if mode == "fallocate":
        os.posix_fallocate(fd, 0, n*256); os.fsync(fd)
    buf = b"x"*200
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0=time.perf_counter()
    for i in range(n):
        os.write(fd, buf); os.fdatasync(fd)
    t1=time.perf_counter(); r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime-r0.ru_utime + r1.ru_stime-r0.ru_stime)/n*1e6
    print(f"{mode:10s} wall {((t1-t0)/n*1e6):7.1f} us/op  cpu {cpu:6.1f} us/op  vcsw {(r1.ru_nvcsw-r0.ru_nvcsw)/n:.2f}")
    os.close(fd); os.remove(path)
for m in sys.argv[1:]: bench(m)
