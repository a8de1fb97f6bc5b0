#!/usr/bin/env bash
# Makes sure the services the tests need answer on 127.0.0.1: starts them when installed but
# stopped, installs them from Debian's packages when missing.
# Usage: ensure-services.sh postgres [rabbitmq] [vhost:NAME] [promtool] [couchdb]
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
  local port=$1 name=$2
  for _ in $(seq 1 60); do
    port_open "$port" && return 0
    sleep 1
  done
  echo "ensure-services: $name did not open port $port" >&2
  return 1
}

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "ensure-services: $* missing and not root: install it first" >&2
    exit 1
  fi
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  port_open 5432 && return 0
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "ensure-services: installing PostgreSQL"
    apt_install postgresql
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$version/main/pg_hba.conf"
  # The tests connect as postgres over TCP without a password, as on the development machines.
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$hba"; then
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$hba"
  fi
  echo "ensure-services: starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  wait_for_port 5432 PostgreSQL
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    echo "ensure-services: installing RabbitMQ"
    apt_install rabbitmq-server
  fi
  echo "ensure-services: starting RabbitMQ"
  rabbitmq-server -detached || true
  wait_for_port 5672 RabbitMQ
}

# Benchmarks measure on a vhost of their own: queues other runs left bound to Kazoo's exchanges on the
# default vhost would also store every benchmark event and skew the figures.
ensure_vhost() {
  local vhost=$1
  ensure_rabbitmq
  if ! rabbitmqctl -q list_vhosts name | grep -qx "$vhost"; then
    rabbitmqctl -q add_vhost "$vhost"
  fi
  rabbitmqctl -q set_permissions -p "$vhost" guest '.*' '.*' '.*'
}

# promtool checks the services' /metrics output; Debian ships it in the prometheus package.
ensure_promtool() {
  command -v promtool >/dev/null 2>&1 && return 0
  echo "ensure-services: installing promtool"
  apt_install --no-install-recommends prometheus
}

# The import tests start their own CouchDB stand-in, pouchdb-server (CouchDB's HTTP API served from
# memory), one per test: here it is only installed, from the npm registry.
ensure_couchdb() {
  command -v pouchdb-server >/dev/null 2>&1 && return 0
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  echo "ensure-services: installing pouchdb-server"
  npm install --global --silent pouchdb-server@4.2.0 >/dev/null
}

for service in "$@"; do
  case "$service" in
    postgres) ensure_postgres ;;
    rabbitmq) ensure_rabbitmq ;;
    vhost:*) ensure_vhost "${service#vhost:}" ;;
    promtool) ensure_promtool ;;
    couchdb) ensure_couchdb ;;
    *) echo "ensure-services: unknown service $service" >&2; exit 2 ;;
  esac
done
