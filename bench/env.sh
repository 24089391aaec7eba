# Sourced by bench/run.sh and bench/isolation.sh, with W (their work
# directory) set: a rootful Podman service of the benchmark's own, on
# storage the podman CLI (the baselines, as the article runs it) uses too;
# a local busybox image; a small repository and one push line for the hook.
# Sets CONTAINERS_CONF, CONTAINER_HOST, svc (the service's pid, for the
# caller's clean-up), IMG, REV, and the function cli.
printf '%s\n' '[containers]' 'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]' \
    '[engine]' 'cgroup_manager = "cgroupfs"' 'events_logger = "file"' 'runtime = "runc"' >"$W/containers.conf"
export CONTAINERS_CONF=$W/containers.conf
export CONTAINER_HOST=unix://$W/podman.sock
# jobq talks to this service; the podman CLI (the baselines, as the article
# runs it) works on the same storage directly.
cli() { env -u CONTAINER_HOST podman "$@"; }
# Not through cli: $! must be podman itself, for the clean-up to stop it.
env -u CONTAINER_HOST podman system service --time=0 "$CONTAINER_HOST" >"$W/podman.log" 2>&1 &
svc=$!
mkdir -p "$W/rootfs/bin" "$W/rootfs/tmp" "$W/rootfs/source"
cp /bin/busybox "$W/rootfs/bin/"
for a in $(/bin/busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$W/rootfs/bin/$a"; done
tar -C "$W/rootfs" -c . | cli import --change 'ENV PATH=/bin' - localhost/jobq-bench-busybox >/dev/null
IMG=localhost/jobq-bench-busybox
for _ in $(seq 100); do [ -S "$W/podman.sock" ] && break; sleep 0.1; done

# A small repository and one push line for the hook.
git init -q --bare "$W/repo.git"
git init -q "$W/wk"
echo x >"$W/wk/f"
git -C "$W/wk" add f
git -C "$W/wk" -c user.name=b -c user.email=b@b commit -qm c
git -C "$W/wk" push -q "$W/repo.git" HEAD:refs/heads/main
REV=$(git --git-dir "$W/repo.git" rev-parse refs/heads/main)
echo "0000000000000000000000000000000000000000 $REV refs/heads/main" >"$W/line"
