#!/usr/bin/env bash
# Real mail servers from Debian packages for otpprobe's interop tests: a
# Dovecot (IMAP with STARTTLS, IDLE, \Junk and \Trash special-use on the
# folders "Junk Email" and "Deleted Items" beside decoys named Junk and
# Trash, Sieve filing X-Spam-Flag: YES and X-Spam: Yes into "Junk Email", LMTP on a unix socket) and a
# Postfix (submission with required STARTTLS and SASL through Dovecot,
# delivering interop.test by LMTP into that Dovecot), both on loopback and
# with every file under one state directory.
#
# Beside them, a real verifier chain: the submission Postfix signs mail
# from *.verify.test with OpenDKIM (selector sel1, one key, d= the From
# domain) and relays everything not for interop.test from 127.0.0.61 to a
# receiving Postfix (myhostname mx.rx.test) that runs rspamd's proxy worker
# as milter (SPF, DKIM, DMARC; p=reject -> 554 5.7.1, p=quarantine ->
# X-Spam: Yes, filed into "Junk Email" by Sieve) and delivers rx.test by
# LMTP into the same Dovecot; bounces@<any>.verify.test lands in
# bounces@rx.test. rspamd asks one DNS server, at the loopback address in
# endpoints.json "verifier.dns", that the test itself serves (zones for
# *.verify.test; the key's TXT value is "verifier.dkim_txt").
#
#   scripts/testservers.sh install    install the packages if missing (root)
#   scripts/testservers.sh up DIR     install if needed, start them all, write DIR/endpoints.json
#   scripts/testservers.sh down DIR   stop them all (by pid); DIR stays for inspection
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
# The verifier chain: the receiving Postfix, rspamd's workers, OpenDKIM and
# the DNS server the test serves for rspamd.
readonly RX_IP=127.0.0.64
readonly RSPAMD_IP=127.0.0.66
readonly OPENDKIM_IP=127.0.0.67
readonly DNS_IP=127.0.0.62
readonly RX_DOMAIN=rx.test
readonly RX_HOST=mx.rx.test
readonly VERIFY_DOMAIN=verify.test
readonly SELECTOR=sel1
# libnet-ssleay-perl: swaks's STARTTLS (only a Recommends of swaks).
# chromium (+ fonts-liberation, only its Recommends) for the dashboard's
# browser tests (cmd/otpprobe TestDashboardInBrowser).
# rspamd (a real verifier behind a receiving Postfix) and opendkim +
# opendkim-tools (signing on the sending side, opendkim-genkey).
readonly PACKAGES=(postfix dovecot-core dovecot-imapd dovecot-lmtpd dovecot-sieve swaks libnet-ssleay-perl curl chromium fonts-liberation rspamd opendkim opendkim-tools)

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
if anyof (header :contains "X-Spam-Flag" "YES", header :is "X-Spam" "Yes") {
  fileinto :create "Junk Email";
  stop;
}
EOF
	{
		printf 'seed@%s:{PLAIN}%s\n' "$DOMAIN" "$seed_pw"
		printf 'bounces@%s:{PLAIN}%s\n' "$DOMAIN" "$bounces_pw"
		printf 'sender@%s:{PLAIN}%s\n' "$DOMAIN" "$sender_pw"
		printf 'seed@%s:{PLAIN}%s\n' "$RX_DOMAIN" "$rx_seed_pw"
		printf 'bounces@%s:{PLAIN}%s\n' "$RX_DOMAIN" "$rx_bounces_pw"
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
# The verifier chain: OpenDKIM signs *.verify.test; everything not for
# $DOMAIN goes from $SUBMISSION_IP (what SPF sees) to the receiving Postfix.
# Without OpenDKIM mail goes unsigned (the verifier tests then fail)
# rather than every interop test failing.
smtpd_milters = inet:$OPENDKIM_IP:$opendkim_port
milter_default_action = accept
relayhost = [$RX_IP]:$rx_port
smtp_bind_address = $SUBMISSION_IP
smtp_helo_name = relay.$VERIFY_DOMAIN
# A deferred message (the receiver tempfailed) is retried within seconds,
# not after Postfix's default five minutes, well inside a test's deadline.
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 10s
EOF
	cat >"$p/master.cf" <<EOF
# Generated by scripts/testservers.sh: one submission listener, no port 25.
$SUBMISSION_IP:$submission_port inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
EOF
	postfix_services >>"$p/master.cf"
	printf 'seed@%s ok\nbounces@%s ok\nsender@%s ok\n' "$DOMAIN" "$DOMAIN" "$DOMAIN" >"$p/vmailbox"
}

# postfix_services prints master.cf's internal services.
postfix_services() {
	cat <<EOF
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
}

# write_rx_postfix_conf: the receiving Postfix, rspamd as its milter,
# rx.test delivered by LMTP into Dovecot and every bounces@*.verify.test
# (the senders' envelope addresses, where DSNs return) into bounces@rx.test.
write_rx_postfix_conf() {
	local p=$dir/rx
	mkdir -p "$p/data" "$p/q"
	chown postfix:postfix "$p/data"
	cat >"$p/main.cf" <<EOF
# Generated by scripts/testservers.sh: the verifier's receiving Postfix.
compatibility_level = 3.6
queue_directory = $p/q
data_directory = $p/data
maillog_file = $p/postfix.log
maillog_file_prefixes = $p
mail_owner = postfix
setgid_group = postdrop
myhostname = $RX_HOST
mydomain = $RX_DOMAIN
myorigin = \$myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks =
alias_maps =
alias_database =
local_recipient_maps =
biff = no
smtputf8_enable = yes
virtual_mailbox_domains = $RX_DOMAIN
virtual_mailbox_maps = texthash:$p/vmailbox
virtual_alias_domains = regexp:$p/alias_domains
virtual_alias_maps = regexp:$p/aliases
virtual_transport = lmtp:unix:$dir/dc/lmtp
smtpd_relay_restrictions = reject_unauth_destination
smtpd_error_sleep_time = 0s
smtpd_milters = inet:$RSPAMD_IP:$rspamd_proxy_port
milter_default_action = tempfail
# rspamd is slow to answer its first message.
milter_command_timeout = 60s
milter_content_timeout = 120s
EOF
	cat >"$p/master.cf" <<EOF
# Generated by scripts/testservers.sh: one port-25-like listener.
$RX_IP:$rx_port inet n - n - - smtpd
EOF
	postfix_services >>"$p/master.cf"
	printf 'seed@%s ok\nbounces@%s ok\n' "$RX_DOMAIN" "$RX_DOMAIN" >"$p/vmailbox"
	printf '/\\.%s$/ ok\n' "${VERIFY_DOMAIN//./\\.}" >"$p/alias_domains"
	printf '/^bounces@[^@]+\\.%s$/ bounces@%s\n' "${VERIFY_DOMAIN//./\\.}" "$RX_DOMAIN" >"$p/aliases"
}

# write_rspamd_conf: rspamd from Debian's /etc/rspamd with our overrides
# (facts in shared notes TEST-SERVERS.md): no hyperscan (slow first start),
# loopback mail checked, DNS from the test's server only, no SPF/DKIM
# caches so zone edits take effect at once, nothing that needs the internet
# and no hfilter (our loopback relay has no rDNS and a made-up HELO: its
# 3.8 points would junk mail whatever its DMARC policy says).
write_rspamd_conf() {
	local r=$dir/rs
	mkdir -p "$r/local.d" "$r/override.d" "$r/db" "$r/run" "$r/log"
	chown -R _rspamd:_rspamd "$r/db" "$r/run" "$r/log"
	# Compiling Debian's 9,600 public suffixes takes rspamd 15-45 s at
	# every fresh start; URLs play no part in these tests.
	printf '// The test domains only (scripts/testservers.sh).\ntest\ncom\norg\nnet\n' >"$r/tld.dat"
	cat >"$r/local.d/options.inc" <<EOF
disable_hyperscan = true;
url_tld = "$r/tld.dat";
check_local = true;
check_authed = true;
dns {
  nameserver = ["$DNS_IP:$dns_port"];
  timeout = 2s;
  retransmits = 2;
}
EOF
	cat >"$r/override.d/options.inc" <<EOF
local_addrs = [];
EOF
	printf 'bind_socket = "%s:%s";\nmilter = yes;\ntimeout = 120s;\nupstream "local" {\n  default = yes;\n  self_scan = yes;\n}\n' \
		"$RSPAMD_IP" "$rspamd_proxy_port" >"$r/override.d/worker-proxy.inc"
	printf 'bind_socket = "%s:%s";\n' "$RSPAMD_IP" "$rspamd_normal_port" >"$r/override.d/worker-normal.inc"
	printf 'bind_socket = "%s:%s";\n' "$RSPAMD_IP" "$rspamd_controller_port" >"$r/override.d/worker-controller.inc"
	printf 'level = "info";\n' >"$r/local.d/logging.inc"
	local m
	for m in spf dkim arc dmarc; do
		printf 'check_local = true;\ncheck_authed = true;\n' >"$r/local.d/$m.conf"
	done
	# No caches of SPF records and DKIM keys (size 0 turns them off): a
	# test changes a zone and the very next message must see it.
	printf 'spf_cache_size = 0;\n' >>"$r/local.d/spf.conf"
	printf 'dkim_cache_size = 0;\n' >>"$r/local.d/dkim.conf"
	printf 'actions {\n  quarantine = "add header";\n  reject = "reject";\n}\n' >>"$r/local.d/dmarc.conf"
	cat >"$r/local.d/milter_headers.conf" <<EOF
use = ["authentication-results", "x-spamd-result", "x-spam-status", "x-rspamd-action"];
skip_local = false;
skip_authenticated = false;
EOF
	for m in rbl fuzzy_check neural reputation asn emails url_redirector greylist ratelimit phishing \
		spamassassin dcc antivirus external_services mx_check bimi rspamd_update history_redis replies \
		metadata_exporter clickhouse elastic p0f dkim_signing hfilter; do
		printf 'enabled = false;\n' >"$r/local.d/$m.conf"
	done
}

rspamd_vars() {
	local r=$dir/rs
	printf '%s\n' "--var=LOCAL_CONFDIR=$r" "--var=DBDIR=$r/db" "--var=RUNDIR=$r/run" "--var=LOGDIR=$r/log"
}

# write_opendkim_conf: one 2048-bit key signs mail from every
# *.verify.test domain as d=<that domain>, s=sel1 ("%" in the KeyTable).
write_opendkim_conf() {
	local k=$dir/dk
	mkdir -p "$k/keys"
	opendkim-genkey -b 2048 -h sha256 -d "$VERIFY_DOMAIN" -s "$SELECTOR" -D "$k/keys"
	cat >"$k/opendkim.conf" <<EOF
# Generated by scripts/testservers.sh: signs for the verifier chain.
Mode s
Socket inet:$opendkim_port@$OPENDKIM_IP
KeyTable file:$k/keytable
SigningTable refile:$k/signingtable
InternalHosts 127.0.0.0/8
Canonicalization relaxed/relaxed
UserID opendkim:opendkim
PidFile $k/run/opendkim.pid
# The state directory sits under /tmp (world-writable): OpenDKIM would
# refuse the key as unsafe and tempfail every message.
RequireSafeKeys false
Syslog no
Background yes
EOF
	printf 'verify %%:%s:%s\n' "$SELECTOR" "$k/keys/$SELECTOR.private" >"$k/keytable"
	printf '*@*.%s verify\n' "$VERIFY_DOMAIN" >"$k/signingtable"
	mkdir -p "$k/run"
	chown -R opendkim:opendkim "$k/keys" "$k/run"
	chmod 600 "$k/keys/$SELECTOR.private"
	# The TXT value: the quoted strings of opendkim-genkey's zone line.
	dkim_txt=$(grep -o '"[^"]*"' "$k/keys/$SELECTOR.txt" | tr -d '"\n')
}

# wait_port waits until ip:port takes TCP connections (a milter has no greeting).
wait_port() {
	local ip=$1 port=$2 what=$3
	for _ in $(seq 1 600); do
		if (exec 3<>"/dev/tcp/$ip/$port") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	die "$what did not listen on $ip:$port (see its log under $dir)"
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
    "port": $imap_port, "tls": "starttls", "username": "bounces@$DOMAIN", "password": "$bounces_pw", "junk": "Junk Email", "trash": "Deleted Items"},
  "verifier": {
    "dns": "$DNS_IP:$dns_port", "domain": "$VERIFY_DOMAIN", "selector": "$SELECTOR", "dkim_txt": "$dkim_txt",
    "source_ip": "$SUBMISSION_IP", "authserv_id": "$RX_HOST",
    "mailbox": {"name": "rspamd", "provider": "generic", "address": "seed@$RX_DOMAIN", "host": "$IMAP_IP", "port": $imap_port,
      "tls": "starttls", "username": "seed@$RX_DOMAIN", "password": "$rx_seed_pw", "authserv_id": "$RX_HOST"},
    "bounces": {"name": "rx-bounces", "provider": "generic", "address": "bounces@$RX_DOMAIN", "host": "$IMAP_IP", "port": $imap_port,
      "tls": "starttls", "username": "bounces@$RX_DOMAIN", "password": "$rx_bounces_pw"}
  }
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
rx_pid() { echo "$dir/rx/q/pid/master.pid"; }
rspamd_pid() { echo "$dir/rs/run/rspamd.pid"; }
opendkim_pid() { echo "$dir/dk/run/opendkim.pid"; }

# all_alive: every daemon of a complete "up" runs.
all_alive() {
	local f
	for f in "$(postfix_pid)" "$(dovecot_pid)" "$(rx_pid)" "$(rspamd_pid)" "$(opendkim_pid)"; do
		alive "$f" || return 1
	done
}

any_alive() {
	local f
	for f in "$(postfix_pid)" "$(dovecot_pid)" "$(rx_pid)" "$(rspamd_pid)" "$(opendkim_pid)"; do
		alive "$f" && return 0
	done
	return 1
}

stop_all() {
	if [[ -f $dir/pf/main.cf ]] && alive "$(postfix_pid)"; then
		postfix -c "$dir/pf" stop 2>/dev/null || kill "$(tr -d ' \n' <"$(postfix_pid)")" 2>/dev/null || true
	fi
	if [[ -f $dir/rx/main.cf ]] && alive "$(rx_pid)"; then
		postfix -c "$dir/rx" stop 2>/dev/null || kill "$(tr -d ' \n' <"$(rx_pid)")" 2>/dev/null || true
	fi
	local f
	for f in "$(rspamd_pid)" "$(opendkim_pid)"; do
		alive "$f" && { kill "$(tr -d ' \n' <"$f")" 2>/dev/null || true; }
	done
	if alive "$(dovecot_pid)"; then
		doveadm -c "$dir/dc/dovecot.conf" stop 2>/dev/null || kill "$(tr -d ' \n' <"$(dovecot_pid)")" 2>/dev/null || true
	fi
	for _ in $(seq 1 100); do
		any_alive || return 0
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
	if all_alive && [[ -s $dir/endpoints.json ]]; then
		log "already up: $dir/endpoints.json"
		return 0
	fi
	stop_all # half-started leftovers
	rm -rf "${dir:?}/dc" "${dir:?}/pf" "${dir:?}/rx" "${dir:?}/rs" "${dir:?}/dk" "${dir:?}/mail" "${dir:?}/tls" "$dir/endpoints.json"
	chmod 755 "$dir"
	# Postfix and the mail uid must reach files under DIR.
	runuser -u postfix -- test -x "$dir" || die "$dir is not reachable by the postfix user; use a directory under /tmp"

	mail_uid=$(id -u nobody) mail_gid=$(id -g nobody)
	imap_port=$(free_port "$IMAP_IP")
	submission_port=$(free_port "$SUBMISSION_IP")
	rx_port=$(free_port "$RX_IP")
	rspamd_proxy_port=$(free_port "$RSPAMD_IP")
	rspamd_normal_port=$(free_port "$RSPAMD_IP")
	rspamd_controller_port=$(free_port "$RSPAMD_IP")
	opendkim_port=$(free_port "$OPENDKIM_IP")
	dns_port=$(free_port "$DNS_IP")
	seed_pw=$(random_secret) bounces_pw=$(random_secret) sender_pw=$(random_secret)
	oauth2_key=$(head -c 32 /dev/urandom | base64)
	rx_seed_pw=$(random_secret) rx_bounces_pw=$(random_secret)
	(( ${#dir} + 20 < 108 )) || die "state directory path too long for unix sockets: $dir"

	make_certs
	write_dovecot_conf
	write_postfix_conf
	write_rx_postfix_conf
	write_rspamd_conf
	write_opendkim_conf

	# Daemons get no stdio of ours: an inherited pipe would keep a caller
	# that reads our output (a CI log, "| tail") waiting until they stop.
	dovecot -c "$dir/dc/dovecot.conf" </dev/null >"$dir/dc/start.log" 2>&1 ||
		die "dovecot did not start: $(cat "$dir/dc/start.log"; tail -n 3 "$dir/dc/dovecot.log" 2>/dev/null)"
	postfix -c "$dir/pf" check || die "postfix check failed: $(tail -n 3 "$dir/pf/postfix.log" 2>/dev/null)"
	postfix -c "$dir/pf" start </dev/null >/dev/null 2>&1 || die "postfix did not start: $(tail -n 3 "$dir/pf/postfix.log" 2>/dev/null)"

	# rspamd's first start takes seconds: start it first, wait for it last.
	local -a rvars
	mapfile -t rvars < <(rspamd_vars)
	rspamadm "${rvars[@]}" configtest -c /etc/rspamd/rspamd.conf >"$dir/rs/configtest.log" 2>&1 ||
		die "rspamd configtest failed: $(tail -n 5 "$dir/rs/configtest.log")"
	rspamd -c /etc/rspamd/rspamd.conf -u _rspamd -g _rspamd "${rvars[@]}" </dev/null >"$dir/rs/start.log" 2>&1 ||
		die "rspamd did not start: $(cat "$dir/rs/start.log"; tail -n 5 "$dir/rs/log/rspamd.log" 2>/dev/null)"
	opendkim -x "$dir/dk/opendkim.conf" </dev/null >"$dir/dk/start.log" 2>&1 ||
		die "opendkim did not start: $(cat "$dir/dk/start.log")"
	postfix -c "$dir/rx" check || die "postfix check (receiving) failed: $(tail -n 3 "$dir/rx/postfix.log" 2>/dev/null)"
	postfix -c "$dir/rx" start </dev/null >/dev/null 2>&1 || die "receiving postfix did not start: $(tail -n 3 "$dir/rx/postfix.log" 2>/dev/null)"

	wait_banner "$IMAP_IP" "$imap_port" dovecot
	wait_banner "$SUBMISSION_IP" "$submission_port" postfix
	wait_banner "$RX_IP" "$rx_port" "receiving postfix"
	wait_port "$OPENDKIM_IP" "$opendkim_port" opendkim
	wait_port "$RSPAMD_IP" "$rspamd_proxy_port" "rspamd proxy"
	write_endpoints
	log "up: imap $IMAP_IP:$imap_port, submission $SUBMISSION_IP:$submission_port, receiving $RX_IP:$rx_port (rspamd milter $RSPAMD_IP:$rspamd_proxy_port, its DNS $DNS_IP:$dns_port); $dir/endpoints.json"
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
