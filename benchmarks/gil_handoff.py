import sys, threading, time
fix = sys.argv[1] == "fix"
gaps = []
stop = False
def ticker():
    last = time.perf_counter()
    while not stop:
        time.sleep(0.0005)
        now = time.perf_counter(); gaps.append(now - last); last = now
t = threading.Thread(target=ticker); t.start()
time.sleep(0.2)
def busy(s):
    end = time.perf_counter() + s
    while time.perf_counter() < end: pass
old = sys.getswitchinterval()
sys.setswitchinterval(5.0)
busy(0.2)           # the snapshot
sys.setswitchinterval(old)
if fix: time.sleep(0)
busy(1.0)           # encoding the reply, CPU-bound
stop = True; t.join()
print(sys.argv[1], "max gap of the service thread: %.3f s" % max(gaps))
