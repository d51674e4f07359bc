#!/usr/bin/env bash
# Runs one of Apache Kafka's own command-line tools with the jars the appliance's broker runs
# on (fetched by scripts/fetch-kafka.sh on first use). Kafka's jar distribution has no shell
# scripts: this stands in for kafka-console-consumer.sh and friends.
#   scripts/kafka.sh console-consumer --bootstrap-server HOST:PORT \
#     --command-config .tickpipe/client.properties --topic stock_ticks --from-beginning
#   scripts/kafka.sh console-producer | topics | consumer-groups | configs  [their options]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
case "${1:-}" in
  console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
  console-producer) class=org.apache.kafka.tools.ConsoleProducer ;;
  topics) class=org.apache.kafka.tools.TopicCommand ;;
  consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
  configs) class=kafka.admin.ConfigCommand ;;
  *) echo "usage: scripts/kafka.sh console-consumer|console-producer|topics|consumer-groups|configs [options]" >&2
     exit 2 ;;
esac
shift
libs="$("$here/fetch-kafka.sh")"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
exec "$java" -cp "$libs/*" -Dlog4j2.level=warn "$class" "$@"
