"""The split deployment over RabbitMQ: ``dingskill gateway`` publishes each platform message
to a durable quorum queue (publisher confirms, then the platform ACK), ``dingskill worker``
consumes it (manual acks, bounded prefetch) and runs the same Pipeline as ``dingskill run``,
``dingskill audit-writer`` keeps the audit chain. The broker, not our code, decides who holds
a message: a consumer that dies gives its unacknowledged messages back."""

from .amqp import BrokerUnavailable, Topology, connect

__all__ = ["BrokerUnavailable", "Topology", "connect"]
