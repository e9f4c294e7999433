#!/bin/sh
# Per-service RabbitMQ users with least-privilege permissions for the split deployment
# (docs/security.md, "Broker"). Run once the node is up, and again after changing a password:
#   RABBITMQ_GATEWAY_PASSWORD=... RABBITMQ_WORKER_PASSWORD=... RABBITMQ_AUDIT_PASSWORD=... \
#   RABBITMQ_OPS_PASSWORD=... sh deploy/rabbitmq/users.sh
# Environment: DINGSKILL_QUEUE (broker.queue, default dingskill), RABBITMQ_VHOST (default /),
# RABBITMQCTL (default rabbitmqctl). The guest user is deleted (RABBITMQ_KEEP_GUEST=1 keeps
# it: for a test node only).
#
#   user               configure      write                              read
#   dingskill-gateway  Q and Q.*      Q and Q.* (publish, bind)          exchanges Q, Q.retry.K
#   dingskill-worker   Q and Q.*      Q.*, amq.default (retry, DLQ)      Q.N shards, Q.workers
#   dingskill-audit    Q and Q.*      Q and Q.* (bind)                   Q.audit
#   dingskill-ops      Q and Q.*      Q (replay)                         Q.dlq
# Every service declares the topology (configure), and binding a queue needs write on it and
# read on its exchange. Nobody but the workers reads the shard queues; nobody but the audit-
# writer reads Q.audit. Messages are also authenticated (HMAC) and published with the
# broker-validated user_id: these permissions are the second line, not the first.
set -eu
CTL=${RABBITMQCTL:-rabbitmqctl}
Q=${DINGSKILL_QUEUE:-dingskill}
VHOST=${RABBITMQ_VHOST:-/}
case "$Q" in *[!A-Za-z0-9_-]*) echo "DINGSKILL_QUEUE: letters, digits, - and _ only" >&2; exit 2;; esac

$CTL await_startup >/dev/null

user() {  # user NAME PASSWORD CONFIGURE WRITE READ
  if [ -z "$2" ]; then echo "users.sh: no password for $1 (see the header)" >&2; exit 2; fi
  $CTL add_user "$1" "$2" >/dev/null 2>&1 || $CTL change_password "$1" "$2" >/dev/null
  $CTL set_user_tags "$1" >/dev/null
  $CTL set_permissions -p "$VHOST" "$1" "$3" "$4" "$5" >/dev/null
  echo "users.sh: $1 ready"
}

ALL="^$Q(\\..*)?\$"
user dingskill-gateway "${RABBITMQ_GATEWAY_PASSWORD:-}" "$ALL" "$ALL" "^$Q(\\.retry\\.[0-9]+)?\$"
user dingskill-worker "${RABBITMQ_WORKER_PASSWORD:-}" "$ALL" "^($Q(\\..*)?|amq\\.default)\$" \
  "^$Q(\\.[0-9]+|\\.retry\\.[0-9]+|\\.workers)?\$"
user dingskill-audit "${RABBITMQ_AUDIT_PASSWORD:-}" "$ALL" "$ALL" "^$Q(\\.audit|\\.retry\\.[0-9]+)?\$"
user dingskill-ops "${RABBITMQ_OPS_PASSWORD:-}" "$ALL" "$ALL" "^$Q(\\.dlq|\\.retry\\.[0-9]+)?\$"
if [ "${RABBITMQ_KEEP_GUEST:-0}" != 1 ]; then $CTL delete_user guest >/dev/null 2>&1 || true; fi
