#!/usr/bin/env bash
# Real mail servers from Debian packages for otpprobe's interop tests: a
# Dovecot (IMAP with STARTTLS, IDLE, \Junk and \Trash special-use on the
# folders "Junk Email" and "Deleted Items" beside decoys named Junk and
# Trash, Sieve filing X-Spam-Flag: YES into "Junk Email", LMTP on a unix socket) and a
# Postfix (submission with required STARTTLS and SASL through Dovecot,
# delivering interop.test by LMTP into that Dovecot), both on loopback and
# with every file under one state directory.
#
#   scripts/testservers.sh install    install the packages if missing (root)
#   scripts/testservers.sh up DIR     install if needed, start both, write DIR/endpoints.json
#   scripts/testservers.sh down DIR   stop both (by pid); DIR stays for inspection
#
# up and down are idempotent. Exit codes: 0 ok, 1 failure, 2 usage,
# 3 cannot run here (not root and packages or privileges missing).
# Environment: TESTSERVERS_CERTS=go forces the Go certificate maker even
# when openssl is present.
set -euo pipefail

readonly IMAP_IP=127.0.0.60
readonly SUBMISSION_IP=127.0.0.61
readonly DOMAIN=interop.test
readonly OAUTH2_ISSUER=https://login.interop.test/v2.0
readonly OAUTH2_AUDIENCE=otpprobe-interop
# libnet-ssleay-perl: swaks's STARTTLS (only a Recommends of swaks).
# chromium (+ fonts-liberation, only its Recommends) for the dashboard's
# browser tests (cmd/otpprobe TestDashboardInBrowser).
readonly PACKAGES=(postfix dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve swaks libnet-ssleay-perl curl chromium fonts-liberation)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"

log() { printf 'testservers: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

usage() {
	echo "usage: $0 install | up DIR | down DIR" >&2
	exit 2
}

# missing prints the packages that are not installed.
missing() {
	local p
	for p in "${PACKAGES[@]}"; do
		[[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) == installed ]] || printf '%s ' "$p"
	done
}

install_packages() {
	local need
	need="$(missing)"
	[[ -z $need ]] && return 0
	if [[ $(id -u) -ne 0 ]]; then
		log "missing packages: $need; run as root (or install them: apt-get install $need)"
		exit 3
	fi
	log "installing: $need"
	local start=$SECONDS policy=/usr/sbin/policy-rc.d made_policy=""
	# Package scripts must not start the system-wide daemons: we run our own.
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	local rc=0
	# shellcheck disable=SC2086 # $need is a word list
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >/dev/null; then
		apt-get update -q >/dev/null || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need >/dev/null || rc=$?
	fi
	[[ -n $made_policy ]] && rm -f "$policy"
	[[ $rc -eq 0 ]] || die "apt-get install failed (exit $rc)"
	need="$(missing)"
	[[ -z $need ]] || die "still missing after install: $need"
	log "installed in $((SECONDS - start))s"
}

# free_port prints a TCP port nobody answers on at ip.
free_port() {
	local ip=$1 port
	for _ in $(seq 1 50); do
		port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null; then
			echo "$port"
			return 0
		fi
	done
	die "no free port on $ip"
}

# wait_banner waits until ip:port answers with an SMTP/IMAP greeting.
wait_banner() {
	local ip=$1 port=$2 what=$3 line
	for _ in $(seq 1 100); do
		# In a subshell: a failed connect must not end the script, and
		# exec's redirections must not outlive the check.
		line=$(exec 2>/dev/null 3<>"/dev/tcp/$ip/$port" && IFS= read -r -t 5 l <&3 && printf '%s' "$l") || true
		case $line in
		"220 "* | "* OK"*) return 0 ;;
		esac
		sleep 0.1
	done
	die "$what did not answer on $ip:$port (see its log under $dir)"
}

random_secret() { head -c 18 /dev/urandom | base64 | tr '+/' 'xy'; }

alive() { [[ -s $1 ]] && kill -0 "$(tr -d ' \n' <"$1")" 2>/dev/null; }

make_certs() {
	local tls=$dir/tls
	mkdir -p "$tls"
	if [[ ${TESTSERVERS_CERTS:-} != go ]] && command -v openssl >/dev/null; then
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 7 \
			-subj "/CN=otpprobe interop CA" \
			-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
			-keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$IMAP_IP" \
			-keyout "$tls/server.key" -out "$tls/server.csr" 2>/dev/null
		printf 'subjectAltName=IP:%s,IP:%s,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' \
			"$IMAP_IP" "$SUBMISSION_IP" >"$tls/ext.cnf"
		openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
			-days 7 -extfile "$tls/ext.cnf" -out "$tls/server.pem" 2>/dev/null
		rm -f "$tls/server.csr" "$tls/ext.cnf" "$tls/ca.srl"
	else
		command -v go >/dev/null || die "neither openssl nor go is available to make certificates"
		(cd "$repo" && go run ./scripts/testservers/mkcert -dir "$tls" -hosts "$IMAP_IP,$SUBMISSION_IP,localhost")
	fi
	chmod 644 "$tls/ca.pem" "$tls/server.pem"
	chmod 600 "$tls/server.key"
}

write_dovecot_conf() {
	local d=$dir/dc
	mkdir -p "$d/run" "$d/state" "$d/sieve"
	cat >"$d/dovecot.conf" <<EOF
# Generated by scripts/testservers.sh for otpprobe interop tests.
instance_name = otpprobe-$imap_port
base_dir = $d/run
state_dir = $d/state
log_path = $d/dovecot.log
protocols = imap lmtp
listen = $IMAP_IP
shutdown_clients = yes

ssl = yes
ssl_cert = <$dir/tls/server.pem
ssl_key = <$dir/tls/server.key
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
auth_mechanisms = plain login xoauth2 oauthbearer
# Tests hit wrong passwords on purpose: no 2 s penalty each time.
auth_failure_delay = 0

passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u $d/users
}
# XOAUTH2 and OAUTHBEARER with JWTs the tests mint (HS256, key under
# oauth2/keys), validated locally without network (see TEST-SERVERS.md).
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $d/oauth2.conf.ext
}
# allow_all_users: the oauth2 passdb cannot answer LMTP's user lookups;
# Postfix's vmailbox list already limits who gets mail.
userdb {
  driver = static
  args = uid=$mail_uid gid=$mail_gid home=$dir/mail/%d/%n allow_all_users=yes
}
mail_location = maildir:~/Maildir
first_valid_uid = 1

namespace inbox {
  inbox = yes
  separator = /
  # Microsoft 365's names carry the special-use; "Junk" and "Trash" are
  # decoys a client might have made, so finding the folders by name
  # instead of by RFC 6154 special-use fails the tests.
  mailbox "Junk Email" {
    special_use = \\Junk
    auto = subscribe
  }
  mailbox "Deleted Items" {
    special_use = \\Trash
    auto = subscribe
  }
  mailbox Junk {
    auto = subscribe
  }
  mailbox Trash {
    auto = subscribe
  }
}

service imap-login {
  inet_listener imap {
    address = $IMAP_IP
    port = $imap_port
  }
  inet_listener imaps {
    port = 0
  }
}
# ... nor an anvil penalty doubling up to 15 s for the next login from 127.0.0.1.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
service lmtp {
  unix_listener $d/lmtp {
    mode = 0660
    user = postfix
    group = postfix
  }
}
service auth {
  unix_listener $d/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
protocol lmtp {
  mail_plugins = \$mail_plugins sieve
  postmaster_address = postmaster@$DOMAIN
}
plugin {
  sieve_before = $d/sieve/spam.sieve
}
EOF
	mkdir -p "$d/oauth2/keys/default/HS256"
	printf '%s' "$oauth2_key" >"$d/oauth2/keys/default/HS256/default"
	cat >"$d/oauth2.conf.ext" <<EOF
introspection_mode = local
local_validation_key_dict = fs:posix:prefix=$d/oauth2/keys/
username_attribute = upn
issuers = $OAUTH2_ISSUER
client_id = $OAUTH2_AUDIENCE
scope = mail
EOF
	chown -R root:dovecot "$d/oauth2" "$d/oauth2.conf.ext"
	chmod -R g+rX,o-rwx "$d/oauth2" "$d/oauth2.conf.ext"
	cat >"$d/sieve/spam.sieve" <<'EOF'
require ["fileinto", "mailbox"];
if header :contains "X-Spam-Flag" "YES" {
  fileinto :create "Junk Email";
  stop;
}
EOF
	{
		printf 'seed@%s:{PLAIN}%s\n' "$DOMAIN" "$seed_pw"
		printf 'bounces@%s:{PLAIN}%s\n' "$DOMAIN" "$bounces_pw"
		printf 'sender@%s:{PLAIN}%s\n' "$DOMAIN" "$sender_pw"
	} >"$d/users"
	chown root:dovecot "$d/users"
	chmod 640 "$d/users"
	sievec -c "$d/dovecot.conf" "$d/sieve/spam.sieve"
	mkdir -p "$dir/mail"
	chown "$mail_uid:$mail_gid" "$dir/mail"
}

write_postfix_conf() {
	local p=$dir/pf
	mkdir -p "$p/data" "$p/q"
	chown postfix:postfix "$p/data"
	cat >"$p/main.cf" <<EOF
# Generated by scripts/testservers.sh for otpprobe interop tests.
compatibility_level = 3.6
queue_directory = $p/q
data_directory = $p/data
maillog_file = $p/postfix.log
maillog_file_prefixes = $p
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.$DOMAIN
mydomain = $DOMAIN
myorigin = \$myhostname
mydestination =
# master.cf binds the one listener; Postfix accepts only interface
# addresses here, and 127.0.0.61 is routed to lo without being one.
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = yes
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:$p/vmailbox
virtual_transport = lmtp:unix:$dir/dc/lmtp
smtpd_tls_cert_file = $dir/tls/server.pem
smtpd_tls_key_file = $dir/tls/server.key
smtpd_tls_security_level = encrypt
smtpd_tls_auth_only = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $dir/dc/auth
smtpd_sasl_auth_enable = yes
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
# Tests provoke rejections on purpose: no tarpit after them.
smtpd_error_sleep_time = 0s
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
EOF
	cat >"$p/master.cf" <<EOF
# Generated by scripts/testservers.sh: one submission listener, no port 25.
$SUBMISSION_IP:$submission_port inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
proxywrite unix  - - n - 1 proxymap
smtp       unix  - - n - - smtp
relay      unix  - - n - - smtp
showq      unix  n - n - - showq
error      unix  - - n - - error
retry      unix  - - n - - error
discard    unix  - - n - - discard
lmtp       unix  - - n - - lmtp
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
	printf 'seed@%s ok\nbounces@%s ok\nsender@%s ok\n' "$DOMAIN" "$DOMAIN" "$DOMAIN" >"$p/vmailbox"
}

write_endpoints() {
	local tmp=$dir/.endpoints.json.tmp
	cat >"$tmp" <<EOF
{
  "dns": "",
  "control": "",
  "ca_file": "$dir/tls/ca.pem",
  "senders": [
    {"name": "postfix", "host": "$SUBMISSION_IP", "port": $submission_port, "tls": "starttls",
     "username": "sender@$DOMAIN", "password": "$sender_pw", "from": "sender@$DOMAIN"}
  ],
  "mailboxes": [
    {"name": "dovecot", "provider": "generic", "address": "seed@$DOMAIN", "host": "$IMAP_IP", "port": $imap_port,
     "tls": "starttls", "username": "seed@$DOMAIN", "password": "$seed_pw", "junk": "Junk Email", "trash": "Deleted Items"}
  ],
  "bounces": {"name": "bounces", "provider": "generic", "address": "bounces@$DOMAIN", "host": "$IMAP_IP",
    "port": $imap_port, "tls": "starttls", "username": "bounces@$DOMAIN", "password": "$bounces_pw", "junk": "Junk Email", "trash": "Deleted Items"}
}
EOF
	chmod 600 "$tmp"
	mv "$tmp" "$dir/endpoints.json"
	# The key and claims Dovecot's oauth2 passdb accepts: tests mint
	# their own tokens with them.
	printf '{"hs256_key": "%s", "issuer": "%s", "audience": "%s", "scope": "mail"}\n' \
		"$oauth2_key" "$OAUTH2_ISSUER" "$OAUTH2_AUDIENCE" >"$dir/oauth2.json"
	chmod 600 "$dir/oauth2.json"
}

postfix_pid() { echo "$dir/pf/q/pid/master.pid"; }
dovecot_pid() { echo "$dir/dc/run/master.pid"; }

stop_all() {
	if [[ -f $dir/pf/main.cf ]] && alive "$(postfix_pid)"; then
		postfix -c "$dir/pf" stop 2>/dev/null || kill "$(tr -d ' \n' <"$(postfix_pid)")" 2>/dev/null || true
	fi
	if alive "$(dovecot_pid)"; then
		doveadm -c "$dir/dc/dovecot.conf" stop 2>/dev/null || kill "$(tr -d ' \n' <"$(dovecot_pid)")" 2>/dev/null || true
	fi
	for _ in $(seq 1 50); do
		alive "$(postfix_pid)" || alive "$(dovecot_pid)" || return 0
		sleep 0.1
	done
	die "servers under $dir did not stop"
}

cmd_up() {
	install_packages
	[[ $(id -u) -eq 0 ]] || { log "up needs root: Postfix's master and Dovecot run as root and drop privileges"; exit 3; }
	[[ $dir != *[[:space:]]* ]] || die "state directory must not contain spaces: $dir"
	mkdir -p "$dir"
	dir="$(cd "$dir" && pwd)"
	if alive "$(postfix_pid)" && alive "$(dovecot_pid)" && [[ -s $dir/endpoints.json ]]; then
		log "already up: $dir/endpoints.json"
		return 0
	fi
	stop_all # half-started leftovers
	rm -rf "${dir:?}/dc" "${dir:?}/pf" "${dir:?}/mail" "${dir:?}/tls" "$dir/endpoints.json"
	chmod 755 "$dir"
	# Postfix and the mail uid must reach files under DIR.
	runuser -u postfix -- test -x "$dir" || die "$dir is not reachable by the postfix user; use a directory under /tmp"

	mail_uid=$(id -u nobody) mail_gid=$(id -g nobody)
	imap_port=$(free_port "$IMAP_IP")
	submission_port=$(free_port "$SUBMISSION_IP")
	seed_pw=$(random_secret) bounces_pw=$(random_secret) sender_pw=$(random_secret)
	oauth2_key=$(head -c 32 /dev/urandom | base64)
	(( ${#dir} + 20 < 108 )) || die "state directory path too long for unix sockets: $dir"

	make_certs
	write_dovecot_conf
	write_postfix_conf

	# Daemons get no stdio of ours: an inherited pipe would keep a caller
	# that reads our output (a CI log, "| tail") waiting until they stop.
	dovecot -c "$dir/dc/dovecot.conf" </dev/null >"$dir/dc/start.log" 2>&1 ||
		die "dovecot did not start: $(cat "$dir/dc/start.log"; tail -n 3 "$dir/dc/dovecot.log" 2>/dev/null)"
	postfix -c "$dir/pf" check || die "postfix check failed: $(tail -n 3 "$dir/pf/postfix.log" 2>/dev/null)"
	postfix -c "$dir/pf" start </dev/null >/dev/null 2>&1 || die "postfix did not start: $(tail -n 3 "$dir/pf/postfix.log" 2>/dev/null)"

	wait_banner "$IMAP_IP" "$imap_port" dovecot
	wait_banner "$SUBMISSION_IP" "$submission_port" postfix
	write_endpoints
	log "up: imap $IMAP_IP:$imap_port, submission $SUBMISSION_IP:$submission_port; $dir/endpoints.json"
}

cmd_down() {
	[[ -d $dir ]] || return 0
	dir="$(cd "$dir" && pwd)"
	stop_all
	rm -f "$dir/endpoints.json"
	log "down: $dir"
}

case ${1:-} in
install) [[ $# -eq 1 ]] || usage; install_packages ;;
up) [[ $# -eq 2 ]] || usage; dir=$2; cmd_up ;;
down) [[ $# -eq 2 ]] || usage; dir=$2; cmd_down ;;
*) usage ;;
esac
