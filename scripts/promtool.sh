#!/usr/bin/env bash
# Checks the Prometheus config (syntax only: its rule path is the
# container's) and checks and unit-tests the rules in configs/prometheus with
# promtool, installing Debian's prometheus package (which ships promtool)
# when it is missing and we are root. Idempotent.
#
#   scripts/promtool.sh install   install promtool if missing (root)
#   scripts/promtool.sh check     install if needed, then check and test the rules
#
# Exit 3 when promtool is missing and cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "promtool: $*" >&2; }

install_promtool() {
	command -v promtool >/dev/null && return 0
	if [[ $(id -u) -ne 0 ]]; then
		log "promtool is missing; run as root or: apt-get install prometheus"
		return 3
	fi
	log "installing Debian's prometheus package for promtool"
	local policy=/usr/sbin/policy-rc.d made_policy="" rc=0
	# The package's scripts must not start a Prometheus server on the host.
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
		trap "rm -f '$policy'" EXIT # also when interrupted ($policy is local: expand it now)
	fi
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; then
		apt-get update -q >/dev/null || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null || rc=$?
	fi
	[[ -n $made_policy ]] && rm -f "$policy"
	if [[ $rc -ne 0 ]] || ! command -v promtool >/dev/null; then
		log "installing prometheus failed (exit $rc)"
		return 3
	fi
}

check_rules() {
	local rules=(configs/prometheus/*.rules.yml) tests=(configs/prometheus/tests/*.test.yml)
	promtool check config --syntax-only configs/prometheus/prometheus.yml
	promtool check rules "${rules[@]}"
	promtool test rules "${tests[@]}"
}

case "${1:-check}" in
install) install_promtool ;;
check)
	install_promtool || exit 3
	check_rules
	;;
*)
	echo "usage: $0 install | check" >&2
	exit 2
	;;
esac
