#!/bin/sh
# nvidia-smi inside a real nbgate sandbox, for machines with an NVIDIA GPU
# (CI has none; run by hand). It checks what the local backend relies on:
# the GPU device nodes bound in, the driver files bound read-only, and the
# GPU usable by an unprivileged uid with no capabilities, no_new_privs and
# our seccomp profile, on whatever cgroup version the machine has.
#
# Usage: tests/gpu/nvidia-smi-in-sandbox.sh BUNDLE
#   BUNDLE holds nbgate-init, lib/ (its shared libraries when the GPU
#   machine lacks them), busybox (static), sbx-probe and profile.json.
#   Make one here with:
#     mkdir -p B/lib && cp build/nbgate-init /bin/busybox build/tests/sbx/sbx-probe B/ &&
#     cp sandbox/profiles/default.json B/profile.json &&
#     cp /lib/x86_64-linux-gnu/libseccomp.so.2 /lib/x86_64-linux-gnu/libcjson.so.1 B/lib/
# Driver paths are those of the lent machine (docs/sandbox.md, "GPUs").
set -u
B=$(cd "${1:?usage: $0 BUNDLE}" && pwd)
G=/tmp/g; rm -rf $G; mkdir -p $G/low/bin $G/low/usr/bin $G/root $G/upper $G/work $G/home $G/sock
mkdir -p $G/low/etc; echo "root:x:0:0::/root:/bin/sh" > $G/low/etc/passwd; echo "root:x:0:" > $G/low/etc/group
cp $B/busybox $G/low/bin/busybox
for c in sh cat ls id echo grep; do ln -s busybox $G/low/bin/$c; done
cp $B/sbx-probe $G/low/usr/bin/sbx-probe
chown 1500:1500 $G/home $G/sock
binds=""
for p in /usr/local/nvidia /lib/x86_64-linux-gnu /lib64 /usr/lib/x86_64-linux-gnu; do
	[ -e $p ] && binds="$binds\"$p\","
done
binds=${binds%,}
devs=""
for d in /dev/nvidia0 /dev/nvidiactl /dev/nvidia-uvm /dev/nvidia-uvm-tools; do
	[ -e $d ] && devs="$devs\"$d\","
done
devs=${devs%,}
cat > $G/spec.json <<JSON
{"id":"gpucheck","rootfs":"$G/root","lower":["$G/low"],"upper":"$G/upper","work":"$G/work",
 "home_src":"$G/home","home_dst":"/home/jovyan","sock_dir":"$G/sock","log_path":"$G/log",
 "uid":1500,"gid":1500,"user_name":"jovyan",
 "argv":["/bin/sh","-c","id; grep -E 'CapEff|NoNewPrivs|Seccomp:' /proc/self/status; ls -l /dev/nvidia*; /usr/local/nvidia/bin/nvidia-smi -L; /usr/local/nvidia/bin/nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; echo rc=\$?"],
 "env":["PATH=/bin:/usr/bin","LD_LIBRARY_PATH=/usr/local/nvidia/lib64"],
 "seccomp_profile":"$B/profile.json","stop_grace_ms":1000,
 "devices":[$devs],"ro_binds":[$binds]}
JSON
cat /sys/fs/cgroup/cgroup.controllers
LD_LIBRARY_PATH=$B/lib $B/nbgate-init $G/spec.json 3>$G/status; echo "shim exit=$?"
echo "status: $(cat $G/status)"; echo "--- log"; cat $G/log
grep -c gpucheck /proc/mounts; ls /sys/fs/cgroup/nbgate 2>&1 | head -3
