#!/usr/bin/env bash
# Checks the deployment files without running them: both Compose files with
# Debian's docker-compose (`config -q`, no engine needed; installed when
# missing and we are root) and the systemd unit with `systemd-analyze
# verify` (its binary paths swapped for /bin/true, which exists everywhere).
# Debian 12 ships no build-free Dockerfile linter (no hadolint), so the
# Dockerfile is only built by `docker compose build`.
#
#   scripts/deploycheck.sh
#
# Exit 3 when docker-compose is missing and cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "deploycheck: $*" >&2; }

if ! command -v docker-compose >/dev/null; then
	if [[ $(id -u) -ne 0 ]]; then
		log "docker-compose is missing; run as root or: apt-get install docker-compose"
		exit 3
	fi
	log "installing Debian's docker-compose"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >/dev/null; then
		apt-get update -q >/dev/null || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends docker-compose >/dev/null || { log "installing docker-compose failed"; exit 3; }
	fi
fi

for f in docker-compose.yml docker-compose.demo.yml; do
	docker-compose -f "$f" config -q
	echo "deploycheck: $f: valid"
done

if command -v systemd-analyze >/dev/null; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	sed 's|/usr/local/bin/otpprobe|/bin/true|g' configs/systemd/otpprobe.service >"$tmp/otpprobe.service"
	systemd-analyze verify "$tmp/otpprobe.service"
	echo "deploycheck: configs/systemd/otpprobe.service: valid"
else
	log "systemd-analyze not found; the unit is not checked"
fi
