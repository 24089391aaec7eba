#!/bin/sh
# Starts the build host: the build user's Podman service on
# /run/user/1000/podman/podman.sock, then sshd in the foreground.
# BUILDHOST_HOST_KEY is the sshd host key (private, OpenSSH format) and
# BUILDHOST_AUTHORIZED_KEY the client's public key, both set by the test.
set -eu
umask 022
if [ -n "${BUILDHOST_HOST_KEY:-}" ]; then
    printf '%s\n' "$BUILDHOST_HOST_KEY" >/etc/ssh/buildhost_host_key
    chmod 0600 /etc/ssh/buildhost_host_key
fi
mkdir -p /home/build/.ssh
printf '%s\n' "${BUILDHOST_AUTHORIZED_KEY:-}" >/home/build/.ssh/authorized_keys
chown -R build:build /home/build/.ssh
chmod 0700 /home/build/.ssh
# A start after a stop is a reboot: runtime state goes, storage stays.
rm -rf /run/user/1000 /tmp/podman-run-1000 /tmp/containers-user-1000
mkdir -p /run/user/1000/podman /run/sshd
chown -R build:build /run/user/1000
chmod 0700 /run/user/1000
runuser -u build -- env -i HOME=/home/build USER=build XDG_RUNTIME_DIR=/run/user/1000 \
    PATH=/usr/local/bin:/usr/bin:/bin \
    podman system service --time=0 unix:///run/user/1000/podman/podman.sock \
    >/var/log/podman-service.log 2>&1 &
exec /usr/sbin/sshd -D -e
