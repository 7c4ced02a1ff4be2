"""Approximate-time pairing of messages, identical in result to ROS 2 message_filters.

:class:`ApproximateTimeSync` reproduces the pairing of the Python
``message_filters.ApproximateTimeSynchronizer`` (``allow_headerless=False``) step by step, in
plain Python on integer nanoseconds, so the node also runs where message_filters is not
installed. On every message:

1. store it in its input's queue, keyed by its header stamp (a message with the stamp of a
   queued one replaces it); while the queue holds more than ``queue_size`` messages, drop the
   one with the *smallest stamp* (which can be the new message itself);
2. in every other queue, keep the stamps within ``slop`` (inclusive) of the new message's stamp,
   sorted by distance (ties in arrival order); if some queue has none, stop;
3. walk the combinations of those candidates in ``itertools.product`` order and emit the first
   one whose spread (newest - oldest, new message included) is *strictly* below ``slop`` and
   whose messages are all still queued; remove the emitted messages from their queues.

Messages are never emitted twice, unmatched ones age out of the queues, and nothing is emitted
for a message that only arrives late enough to be the oldest of a full queue.
"""

import itertools
import logging
import threading

_logger = logging.getLogger(__name__)

NANOSECONDS_PER_SECOND = 1000 * 1000 * 1000
IMPLEMENTATION_MESSAGE_FILTERS = 'message_filters'
IMPLEMENTATION_VD_ROS = 'vd_ros.sync'


def stamp_nanoseconds(msg) -> int:
    """Return ``msg.header.stamp`` as integer nanoseconds.

    Args:
        msg: Any message with ``header.stamp`` (``sec``, ``nanosec``).

    Returns:
        ``sec * 1e9 + nanosec``.

    Raises:
        AttributeError: When the message has no header stamp.
    """
    stamp = msg.header.stamp
    return int(stamp.sec) * NANOSECONDS_PER_SECOND + int(stamp.nanosec)


class ApproximateTimeSync:
    """Approximate-time synchronizer over ``n_inputs`` message streams.

    Feed messages with :meth:`add`; ``callback(msg_0, ..., msg_{n-1})`` runs (outside the
    internal lock, in the thread that called :meth:`add`) for every matched set.
    """

    def __init__(self, queue_size: int, slop: float, callback, n_inputs: int = 2):
        """Create the synchronizer.

        Args:
            queue_size: Messages kept per input while waiting for partners (>= 1).
            slop: Largest stamp difference, in seconds, inside a matched set (>= 0).
            callback: Called with one message per input, in input order.
            n_inputs: Number of input streams (>= 1).

        Raises:
            ValueError: For a queue size, slop or input count out of range.
        """
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        if not slop >= 0.0:
            raise ValueError(f'slop must be >= 0 seconds, got {slop}')
        if n_inputs < 1:
            raise ValueError(f'n_inputs must be >= 1, got {n_inputs}')
        self.queue_size = int(queue_size)
        # Same rounding as rclpy.duration.Duration(seconds=slop).
        self.slop_ns = int(slop * NANOSECONDS_PER_SECOND)
        self.callback = callback
        self.n_inputs = int(n_inputs)
        self._queues = [{} for _ in range(self.n_inputs)]  # per input: {stamp_ns: msg}
        self._lock = threading.Lock()
        self.headerless_drops = 0

    def add(self, index: int, msg) -> None:
        """Add a message from input ``index`` and emit a matched set if there is one.

        Args:
            index: Input number, 0 <= index < n_inputs.
            msg: Message with ``header.stamp``; a message without one is logged, counted in
                ``headerless_drops`` and dropped (message_filters with allow_headerless=False).

        Raises:
            IndexError: For an input number out of range.
        """
        if not 0 <= index < self.n_inputs:
            raise IndexError(f'input index {index} out of range for {self.n_inputs} inputs')
        try:
            stamp = stamp_nanoseconds(msg)
        except AttributeError:
            self.headerless_drops += 1
            _logger.warning('dropped a %s without header.stamp on input %d',
                            type(msg).__name__, index)
            return
        with self._lock:
            matched = self._match(index, msg, stamp)
        if matched is not None:
            self.callback(*matched)

    def _match(self, index: int, msg, stamp: int):
        """Queue ``msg`` and return the matched set (list of messages) or None."""
        own_queue = self._queues[index]
        own_queue[stamp] = msg
        while len(own_queue) > self.queue_size:
            del own_queue[min(own_queue)]
        candidates = []
        for other_index, queue in enumerate(self._queues):
            if other_index == index:
                continue
            near = [s for s in queue if abs(s - stamp) <= self.slop_ns]  # arrival order
            if not near:
                return None
            candidates.append(sorted(near, key=lambda s: abs(s - stamp)))  # stable sort
        for combination in itertools.product(*candidates):
            stamps = list(combination)
            stamps.insert(index, stamp)
            if (max(stamps) - min(stamps) < self.slop_ns
                    and all(s in queue for queue, s in zip(self._queues, stamps))):
                return [queue.pop(s) for queue, s in zip(self._queues, stamps)]
        return None


def subscribe_synchronized(node, msg_types, topics, qos, queue_size: int, slop: float,
                           callback, use_message_filters: bool = None,
                           on_message=None) -> str:
    """Subscribe ``node`` to ``topics`` and call ``callback`` with approximate-time sets.

    The node owns the subscriptions it creates and each subscription's callback holds the
    synchronizer, so the caller need not keep any reference; the subscriptions live until
    ``node.destroy_subscription`` (one per returned subscription) or ``node.destroy_node()``.

    Args:
        node: An ``rclpy.node.Node``.
        msg_types: One message type per topic.
        topics: Topic names, in the order of the callback's arguments.
        qos: QoS profile (or history depth) of every subscription.
        queue_size: Messages kept per topic while waiting for partners.
        slop: Largest stamp difference in a set, in seconds.
        callback: Called with one message per topic.
        use_message_filters: True: message_filters (ImportError if missing); False: this
            module's :class:`ApproximateTimeSync`; None: message_filters when importable.
        on_message: Called with the topic's index for every message received, before
            pairing (per-input counts).

    Returns:
        ``(implementation, subscriptions)``: ``'message_filters'`` or ``'vd_ros.sync'``, and
        the rclpy subscriptions created, in topic order.

    Raises:
        ValueError: When ``msg_types`` and ``topics`` differ in length or are empty.
    """
    msg_types, topics = list(msg_types), list(topics)
    if not topics or len(msg_types) != len(topics):
        raise ValueError(
            f'need one message type per topic, got {len(msg_types)} types for topics {topics}')
    message_filters = None
    if use_message_filters is not False:
        try:
            import message_filters
        except ImportError:
            if use_message_filters:
                raise
            _logger.info('message_filters not importable; using vd_ros.sync')
    if message_filters is not None:
        subscribers = [message_filters.Subscriber(node, msg_type, topic, qos_profile=qos)
                       for msg_type, topic in zip(msg_types, topics)]
        synchronizer = message_filters.ApproximateTimeSynchronizer(
            subscribers, queue_size, slop)
        synchronizer.registerCallback(callback)
        if on_message is not None:
            for index, subscriber in enumerate(subscribers):
                subscriber.registerCallback(lambda msg, index=index: on_message(index))
        return IMPLEMENTATION_MESSAGE_FILTERS, [subscriber.sub for subscriber in subscribers]
    synchronizer = ApproximateTimeSync(queue_size, slop, callback, n_inputs=len(topics))

    def receive(msg, index):
        if on_message is not None:
            on_message(index)
        synchronizer.add(index, msg)
    return IMPLEMENTATION_VD_ROS, [node.create_subscription(
        msg_type, topic, lambda msg, index=index: receive(msg, index), qos)
        for index, (msg_type, topic) in enumerate(zip(msg_types, topics))]
