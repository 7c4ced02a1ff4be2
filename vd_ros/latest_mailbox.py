"""A one-slot mailbox: the newest item wins, older unprocessed items are dropped.

The subscription callback puts each synchronized RGB-depth pair here and returns at once; the
worker thread takes the newest pair when it is free. When the model is slower than the camera,
latency stays bounded by one model call instead of growing with a queue.
"""

import threading


class LatestMailbox:
    """Thread-safe single-slot mailbox (newest item wins)."""

    def __init__(self):
        """Create an empty, open mailbox."""
        self._condition = threading.Condition()
        self._item = None
        self._closed = False

    def put(self, item) -> bool:
        """Store ``item``, replacing an unprocessed one.

        Returns:
            True when an older item was overwritten (dropped) by this one.
        """
        with self._condition:
            overwritten = self._item is not None
            self._item = item
            self._condition.notify_all()
            return overwritten

    def wait_empty(self, timeout: float = None) -> bool:
        """Wait until the item put last has been taken (or the box is closed).

        Returns:
            True when the box is empty, False on timeout.
        """
        with self._condition:
            return self._condition.wait_for(lambda: self._item is None or self._closed,
                                            timeout)

    def take(self, timeout: float = None):
        """Wait for an item and remove it.

        Args:
            timeout: Seconds to wait; None waits until an item arrives or the box is closed.

        Returns:
            The newest item, or None on timeout or after :meth:`close`.
        """
        with self._condition:
            self._condition.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            self._condition.notify_all()  # wakes wait_empty
            return item

    @property
    def pending(self) -> bool:
        """Whether an item waits to be taken."""
        return self._item is not None

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def close(self) -> None:
        """Wake up every waiting :meth:`take` and make later ones return None at once."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
