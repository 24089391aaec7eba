# Sourced by bench/run.sh and bench/isolation.sh, with W (their work
# directory) set: a rootful Podman service of the benchmark's own, on
# storage the podman CLI (the baselines, as the article runs it) uses too;
# a local busybox image; a small repository and one push line for the hook.
# Sets CONTAINERS_CONF, CONTAINER_HOST, svc (the service's pid, for the
# caller's clean-up), IMG, REV, and the functions cli, ms, script and
# big_repo; writes $W/article.sh, the article's pipeline, the baseline of
# the job overhead.
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
IMG=localhost/jobq-bench-busybox
# Once: each import under the same name left the last one behind,
# untagged, and a storage of hundreds of images slows every create.
cli image exists "$IMG" || tar -C "$W/rootfs" -c . | cli import --change 'ENV PATH=/bin' - "$IMG" >/dev/null
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

# hyperfine medians, in ms: ms FILE.json INDEX
ms() { jq -r ".results[$2].median * 1000" "$1"; }
# script NAME BODY: a small shell script in $W, for hyperfine to run.
script() { printf '#!/bin/sh\n%s\n' "$2" >"$W/$1"; chmod +x "$W/$1"; }

# The article's pipeline: git checkout into a temporary directory, then
# podman run --rm, same image, --network=none.
script article.sh "set -e
tmpd=\$(mktemp -d)
trap \"rm -rf '\$tmpd'\" EXIT
git --work-tree=\"\$tmpd\" --git-dir=$W/repo.git checkout -q --force $REV
env -u CONTAINER_HOST podman run --rm --network=none --volume \"\$tmpd:/source\" --workdir=/source $IMG true"

# big_repo: a real repository, the podman, common, image and storage module
# sources (dependencies, so in the module cache), as $W/big.git; sets
# BIGREV and files (its file count).
big_repo() {
    mod=$(go env GOMODCACHE)/github.com/containers
    mkdir -p "$W/src"
    for m in podman/v5@v5.6.2 common@v0.64.2 image/v5@v5.36.2 storage@v1.59.1; do
        [ -d "$mod/$m" ] || go mod download "github.com/containers/${m%@*}@${m#*@}"
        cp -r "$mod/$m" "$W/src/$(echo "$m" | tr '/@' '__')"
    done
    chmod -R u+w "$W/src"
    git -C "$W/src" init -q
    git -C "$W/src" add -A
    git -C "$W/src" -c user.name=b -c user.email=b@b commit -qm src
    git clone -q --bare --no-local "$W/src" "$W/big.git"
    BIGREV=$(git --git-dir "$W/big.git" rev-parse HEAD)
    files=$(git --git-dir "$W/big.git" ls-tree -r HEAD | wc -l)
}
